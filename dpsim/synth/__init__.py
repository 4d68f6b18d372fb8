"""Realistic synthetic raw data drops shaped like the ASX DRR exports (deterministic by seed, streamed).

Model, in short (the why is in the modules):
- A universe of securities with Zipf-like activity, a price, a tick (5 below $2, else 10 thousandths)
  and a spread profile (`market`). Each trading day has a whole-day NBBO random walk per security: one-tick
  spreads mostly, rare locked quotes in continuous trading, frequent crossed / locked / one-sided
  (Long.MIN) quotes in the evening and pre-open.
- A day runs on one time axis from the day roll (19:00 local) of the previous calendar day (reloads,
  changereason 30) to the next roll (`clock`), so every event falls on its own trading date. Continuous
  trading is 10:00-16:00 with a U-shaped intensity; auctions open at 10:00:00-10:00:09; leftovers are
  cancelled or purged after 16:00; GTC orders survive and are reloaded the next trading evening.
- Activity is a set of vectorised *episodes* (`episodes`: lit trade, lit resting order, CP sweep, CP resting
  order, opening auction, reload). An episode creates every order it needs (`orders`, `legs`), so both
  sides of every trade are orders in the file, and immediate fills share the incoming order's timestamp;
  `events` turns a slice's orders into their event rows.
- Centre Point prints at the NBBO mid only when the mid is a whole thousandth: with a 10 tick every
  mid is; with a 5 tick a one-tick spread gives an x.5 mid, and then the CP leg is skipped (the sweep
  goes to the lit book or rests). The NBBO feed and event snapshots still carry those half-unit mids.
- Streaming (`day`): each day is cut into time slices of bounded size, written as CSV (`output`) with the
  exports' headers from `dpsim.schema`.
"""

from dpsim.synth.drop import KINDS, SynthSummary, generate, parse_scale, trading_dates

__all__ = ["KINDS", "SynthSummary", "generate", "parse_scale", "trading_dates"]
