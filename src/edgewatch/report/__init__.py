"""Reports people would rather look at than read: one self-contained HTML file (inline SVG,
no script library, no network) of a device's windows or of a fleet.

``data`` gathers what a report shows (from replay or run lines, or handed over by the
collector's ``report_source`` from its store), ``charts`` draws SVG, ``html`` lays out the
page. Shared like ``contracts``: imports neither the agent nor the collector.
"""
