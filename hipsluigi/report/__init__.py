"""The QA report of a map: plots (:mod:`~hipsluigi.report.plots`), the background check
(:mod:`~hipsluigi.report.residuals`) and the HTML page (:mod:`~hipsluigi.report.page`).

Pure: numpy arrays and plain values in, PNG bytes and HTML text out; no Luigi, no paths.
:class:`hipsluigi.pipeline.report.QAReport` reads a map's files and writes the report.
"""
