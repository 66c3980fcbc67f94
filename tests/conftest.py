"""The one root conftest of the Python suites (tests/envoy, tests/deploy; the servers in
tests/support are shared with tests/worker).

pytest (its default `prepend` import mode) puts this file's directory, tests/, on `sys.path`, so
every suite imports the shared helpers as the `support` package (`from support import harness`)
without editing `sys.path` itself. tests/pytest.ini makes tests/ the rootdir, so this file is
loaded whichever suite or single test is run (`scripts/test-envoy -k name`, or pytest on a path).
"""
