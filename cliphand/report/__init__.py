"""The generated report (reports/report.md and its figures) from the pipeline's outputs: build, sections,
figures, markdown tables."""
