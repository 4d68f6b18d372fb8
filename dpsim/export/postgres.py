"""`dpsim export --to postgresql://…`: the lake's results and aggregates into PostgreSQL through ADBC.

Tables are created from the lake's Arrow schemas (hive keys first, then the file columns; int64 -> BIGINT,
float64 -> DOUBLE PRECISION, string -> TEXT, bool -> BOOLEAN, date -> DATE, Arrow timestamps ->
TIMESTAMPTZ). The lake's event times are int64 nanoseconds since the epoch (UTC) and stay BIGINT: a
TIMESTAMPTZ holds microseconds only, and ASX events that share a microsecond would lose their order
(README: `to_timestamp(arrival_time / 1e9)` reads one as a time).

Each (table, security, date) partition (every scenario's file of it) is replaced in one transaction: DELETE
its rows, stream its batches with COPY (ADBC ingest), COMMIT; a kill at any point leaves the partition
either as it was or as the lake has it. A table this export creates holds only what it sends, once per
partition: it is filled without the DELETEs and indexed at the end (a killed first load gets its index at
the start of the next export). `workers` connections send partitions side by side (the client
encodes one while the server stores another). Aggregates are dropped, re-created and filled in one
transaction. The lake remembers what it sent (source.ExportState), so a rerun sends only what changed.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import queue
import time
from collections.abc import Callable, Generator
from contextlib import ExitStack, closing

import pyarrow as pa

from dpsim.export.pgdb import Database, send_schema
from dpsim.export.source import (
    WHOLE,
    AggregateFile,
    ExportResult,
    ExportState,
    Inventory,
    Part,
    Selection,
    file_schema,
    hive_fields,
    inventory,
    key_of,
    load_state,
    new_export_id,
    save_state,
    unify,
)
from dpsim.lake import Lake
from dpsim.progress import Progress, SilentProgress

log = logging.getLogger(__name__)

WORKERS = 2  # connections sending partitions side by side
_CHECKPOINT_S = 2.0  # the export state is saved at most this often (and at the end): a kill re-sends < 2 s

OnPart = Callable[[Part, int], None]


def export_postgres(
    lake: Lake,
    url: str,
    *,
    schema: str = "public",
    selection: Selection | None = None,
    rebuild: bool = False,
    workers: int = WORKERS,
    progress: Progress | None = None,
    on_part: OnPart | None = None,
) -> ExportResult:
    """Send the selected results and aggregates that changed since the last export to this target.

    `rebuild` drops the selected tables in the target first and sends everything. `on_part(part, rows)` is
    called (in the calling thread) after each partition's transaction committed: progress, tests.
    """
    selection = selection or Selection()
    inv = inventory(lake, selection)
    started = time.perf_counter()
    with Database.connect(url, schema) as db:
        result = ExportResult(db.label, new_export_id())
        state = load_state(lake, db.identity)
        db.prepare(result.export_id, lake, selection)
        run = _Export(lake, url, db, state, result, inv, selection, rebuild, max(1, workers))
        try:
            with run:
                for table, parts in inv.parts.items():
                    run.table(table, parts, progress or SilentProgress(), on_part)
                for agg in inv.aggregates:
                    run.aggregate(agg)
            result.seconds = time.perf_counter() - started
            db.finish(result, "ok")
        except BaseException as exc:
            result.seconds = time.perf_counter() - started
            db.fail(result, exc)
            raise
        finally:
            save_state(lake, state)
    return result


class _Export:
    """One export run: the main connection, the extra ones opened when there is something to send, the state."""

    def __init__(
        self,
        lake: Lake,
        url: str,
        db: Database,
        state: ExportState,
        result: ExportResult,
        inv: Inventory,
        selection: Selection,
        rebuild: bool,
        workers: int,
    ) -> None:
        self.lake, self.url, self.db, self.state, self.result = lake, url, db, state, result
        self.inv, self.selection, self.rebuild, self.workers = inv, selection, rebuild, workers
        self.stack = ExitStack()
        self.pool: list[Database] = []
        self.last_save = time.monotonic()

    def __enter__(self) -> _Export:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()

    def table(self, table: str, parts: list[Part], progress: Progress, on_part: OnPart | None) -> None:
        db, stats, info = self.db, self.result.stats(table), self.state.table(table)
        if self.rebuild:
            db.drop(table)
        if self.rebuild or info["id"] is None or info["id"] != db.oid(table):
            info["id"], info["sent"] = None, {}  # new, or dropped and re-created behind our back: send it all
        sent: dict[str, str] = info["sent"]
        todo = [p for p in parts if sent.get(str(p.key)) != p.signature]
        stats.unchanged = len(parts) - len(todo)
        present = {str(p.key) for p in parts}
        gone = [label for label in sent if label not in present and self.selection.wants_key(key_of(label))]
        keys = hive_fields(table in self.inv.scenario_tables)
        with progress.task(f"export {table}", total=len(todo) + len(gone), unit="partitions") as bar:
            if todo:
                # Footers only: each partition's schema, and their union, which the table takes before any
                # partition goes, so partitions written before and after a metrics change all fit.
                schemas = [file_schema(self.lake, list(p.files)) for p in todo]
                columns, fresh = db.ensure_table(table, keys, unify(schemas, f"results/{table}"))
                info["id"] = db.oid(table)
                send = {sc: send_schema(keys, sc, columns) for sc in set(schemas)}  # few distinct ones
                with closing(
                    self._send(table, [(p, send[sc]) for p, sc in zip(todo, schemas, strict=True)], fresh)
                ) as sending:
                    for part, rows in sending:  # leaving this loop early stops the workers (closing)
                        sent[str(part.key)] = part.signature
                        stats.sent += 1
                        stats.rows += rows
                        self._maybe_save()
                        bar.advance(1)
                        if on_part is not None:
                            on_part(part, rows)
                if fresh:
                    db.index(table)
            for label in gone:
                db.delete_partition(table, label)
                del sent[label]
                stats.removed += 1
                self._maybe_save()
                bar.advance(1)

    def _send(
        self, table: str, todo: list[tuple[Part, pa.Schema]], fresh: bool
    ) -> Generator[tuple[Part, int], None, None]:
        """Replace every partition of `todo` (with the schema to send it as), `workers` at a time, each on its
        own connection; yields (partition, rows) as each commits. Closing the generator cancels the
        partitions not started and waits for those under way."""
        dbs = self._connections(min(self.workers, len(todo)))
        free: queue.SimpleQueue[Database] = queue.SimpleQueue()
        for d in dbs:
            free.put(d)

        def replace(part: Part, send: pa.Schema) -> tuple[Part, int]:
            d = free.get()
            try:
                return part, d.replace_partition(self.lake, table, part, send, fresh=fresh)
            finally:
                free.put(d)

        with cf.ThreadPoolExecutor(len(dbs), thread_name_prefix="dpsim-export") as pool:
            futures = [pool.submit(replace, p, send) for p, send in todo]
            try:
                for fut in cf.as_completed(futures):
                    yield fut.result()
            finally:
                for fut in futures:
                    fut.cancel()

    def _connections(self, n: int) -> list[Database]:
        while len(self.pool) < n - 1:
            self.pool.append(self.stack.enter_context(Database.connect(self.url, self.db.schema)))
        return [self.db, *self.pool[: n - 1]]

    def aggregate(self, agg: AggregateFile) -> None:
        """An aggregate is replaced whole, in one transaction, when its file changed."""
        self.result.aggregates.add(agg.name)
        db, stats, info = self.db, self.result.stats(agg.name), self.state.table(agg.name)
        oid = db.oid(agg.name)
        if (
            not self.rebuild
            and oid is not None
            and info["id"] == oid
            and info["sent"].get(WHOLE) == agg.signature
        ):
            stats.unchanged = 1
            return
        stats.rows = db.replace_aggregate(self.lake, agg)
        stats.sent = 1
        info["id"], info["sent"] = db.oid(agg.name), {WHOLE: agg.signature}
        self._maybe_save()

    def _maybe_save(self) -> None:
        """Save the state now and then: what a killed export loses is re-sent, and re-sending a partition
        replaces it (no duplicate), so the state only needs to be roughly current."""
        if time.monotonic() - self.last_save >= _CHECKPOINT_S:
            save_state(self.lake, self.state)
            self.last_save = time.monotonic()
