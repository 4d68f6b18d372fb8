"""dpsim's benchmark harness: `python -m bench.run --quick|--full` (see BENCHMARKS.md).

run (options, the sections in order, the results file) -> session (settings, the rows measured so far)
-> sections_shred, sections_process, sections_code (what each section measures) -> harness (one measured
process, cached inputs) and lake_figures (figures read back through dpsim.lake); rows (the typed result
rows) -> targets and tables -> render (BENCHMARKS.md, the scaling plot). peers, kernel, profile and tasks
are the programs the harness measures or asks, each in its own process (`python -m bench.<name>`).
"""
