import os

import pytest

from harness import MODULE, NGINX_BIN, SECRET, TINYPROXY, Certs, MockDingTalk, Nginx, Tinyproxy

def pytest_configure(config):
    config.addinivalue_line("markers", "slow: minutes of wall time (DingTalk's real rate limit)")
    for path, what in ((NGINX_BIN, "nginx binary"), (MODULE, "built module")):
        if not os.path.exists(path):
            raise pytest.UsageError(f"{what} not found at {path}: run 'make integration'")


@pytest.fixture(scope="session")
def certs():
    return Certs()


@pytest.fixture
def mock():
    m = MockDingTalk(secret=SECRET)
    yield m
    m.close()


@pytest.fixture
def tls_mock(certs):
    m = MockDingTalk(tls_cert=certs.cert, tls_key=certs.key, secret=SECRET)
    yield m
    m.close()


@pytest.fixture
def proxies():
    """Starts tinyproxy instances: proxies(port, ...) allows CONNECT to those ports."""
    if not os.access(TINYPROXY, os.X_OK):
        why = "tinyproxy not installed (scripts/install-deps.sh test installs it)"
        if os.environ.get("CI"):
            pytest.fail(why)  # CI installs everything: a skip there would hide a missing step
        pytest.skip(why)
    started = []

    def make(*ports, auth=None):
        p = Tinyproxy(ports, auth)
        started.append(p)
        return p

    yield make
    for p in started:
        p.close()


@pytest.fixture
def nginx_factory():
    """Starts nginx instances; at teardown stops them and fails on unexpected [alert]s."""
    started = []

    def make(http, start=True, **kw):
        n = Nginx(http, **kw)
        started.append(n)
        return n.start() if start else n

    yield make
    problems = []
    for n in started:
        try:
            n.stop()
        finally:
            problems += n.problems()
    assert not problems, "unexpected lines in nginx's error log:\n" + "\n".join(problems)
