"""Files in and out of the list: ``read`` (CSV, TXT, XLSX, ZIP), ``imports`` (options,
mapping, row validation), ``analysis`` (what an import would do), ``exports`` (CSV and
XLSX, streamed). Used by the API; no I/O beyond the files themselves."""
