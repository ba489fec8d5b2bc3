"""Looking at a map: a local copy of Aladin Lite beside ``index.html``, and a loopback server.

:mod:`hipsluigi.viewer.aladin_lite` fetches Aladin Lite 3 from the npm registry into a user
cache and copies it into a HiPS folder; :mod:`hipsluigi.viewer.serve` serves a HiPS folder on
127.0.0.1. Neither imports Luigi: ``hipsluigi serve`` (:mod:`hipsluigi.cli`) finds a map's folder.
"""
