"""Stage: report. Tables, figures and a summary of ``results/`` beside the paper's numbers.

Entry point: :func:`redi.report.build.build_report` (also ``redi report build``); the file list
it writes comes from :func:`redi.report.layout.report_outputs`.
"""
