"""Tools that read what runs wrote: the report, plots, the retrieval visualization, prediction."""
