"""Which CAs DingTalk's certificate is checked against: a bundle's certificates are indexed once
per worker and parsed only when a chain needs them, chains through an intermediate verify with
the root or the intermediate alone trusted, and a connection verified against one location's
CAs is never used by a location that trusts others."""

import os

import pytest

from harness import MockDingTalk, notification

# AddressSanitizer's redzones and quarantine make a worker's size say nothing of the module's
SANITIZED = bool(os.environ.get("DINGTALK_NGINX_PRELOAD"))

SYSTEM_CAS = "/etc/ssl/certs/ca-certificates.crt"


def locations(mock, **trusted):
    """One server with a location per name, each trusting its own CA file."""
    blocks = "".join(f"""
        location = /{name} {{
            dingtalk;
            dingtalk_token 0123456789abcdef;
            dingtalk_api_url {mock.url};
            dingtalk_thread_pool dingtalk;
            dingtalk_rate_limit off;
            dingtalk_ssl_trusted_certificate {path};
        }}""" for name, path in trusted.items())
    return f"""
    server {{
        listen 127.0.0.1:%PORT%;
        {blocks}
    }}
"""


def bundle(tmp_path, name, *parts):
    """A CA file of the given PEM files, world-readable for nginx's worker."""
    text = ""
    for p in parts:
        with open(p) as f:
            text += f.read()
    path = tmp_path / name
    path.write_text(text)
    os.chmod(tmp_path, 0o755)
    os.chmod(path, 0o644)
    return str(path)


@pytest.fixture
def chain_mock(certs):
    root, inter, served, key = certs.chain()
    m = MockDingTalk(tls_cert=served, tls_key=key)
    yield m
    m.close()


def test_a_chain_verifies_with_only_its_root_trusted_among_the_system_cas(
        nginx_factory, chain_mock, certs, tmp_path):
    root, _, _, _ = certs.chain()
    cas = bundle(tmp_path, "cas.pem", SYSTEM_CAS, root)
    ngx = nginx_factory(locations(chain_mock, hook=cas))
    r = ngx.post("/hook", notification())
    assert r.status == 200, r
    assert len(chain_mock.received) == 1


def test_a_chain_verifies_with_only_its_intermediate_trusted(nginx_factory, chain_mock, certs,
                                                            tmp_path):
    _, inter, _, _ = certs.chain()
    ngx = nginx_factory(locations(chain_mock, hook=bundle(tmp_path, "inter.pem", inter)))
    assert ngx.post("/hook", notification()).status == 200


def test_a_chain_is_refused_when_neither_root_nor_intermediate_is_trusted(
        nginx_factory, chain_mock, certs, tmp_path):
    cas = bundle(tmp_path, "cas.pem", SYSTEM_CAS, certs.ca)
    ngx = nginx_factory(locations(chain_mock, hook=cas))
    r = ngx.post("/hook", notification())
    assert r.status == 502, r
    assert "certificate" in r.json["reason"]
    assert chain_mock.received == []


def test_a_connection_verified_for_one_location_is_not_used_by_one_trusting_other_cas(
        nginx_factory, tls_mock, certs, tmp_path):
    """Both locations send to the same host and port; /ours trusts the CA that signed its
    certificate, /theirs only another CA: the connection /ours left open must not carry
    /theirs' message."""
    rogue_ca = os.path.join(certs.dir, "rogue-ca.pem")
    ngx = nginx_factory(locations(tls_mock, ours=certs.ca, theirs=rogue_ca))
    assert ngx.post("/ours", notification()).status == 200
    r = ngx.post("/theirs", notification())
    assert r.status == 502, r
    assert "certificate" in r.json["reason"]
    assert len(tls_mock.received) == 1
    assert ngx.post("/ours", notification()).status == 200, "its own connection still serves it"


def rss_anon_kb(ngx):
    with open(f"/proc/{ngx.workers()[0]}/status") as f:
        return int(next(line for line in f if line.startswith("RssAnon:")).split()[1])


@pytest.mark.skipif(not os.path.exists(SYSTEM_CAS), reason="no system CA bundle")
def test_a_bundle_is_parsed_only_as_far_as_a_chain_needs(nginx_factory, tls_mock, certs,
                                                         tmp_path):
    """The system's 140-odd CAs and the test CA: parsed whole, the first delivery with them took
    about 800 kB more of the worker's private memory; indexed, about 260 kB (a new connection,
    its TLS state, the index), and the test CA is the only one parsed."""
    small = bundle(tmp_path, "small.pem", certs.ca)
    big = bundle(tmp_path, "big.pem", SYSTEM_CAS, certs.ca)
    ngx = nginx_factory(locations(tls_mock, small=small, big=big),
                        thread_pool="thread_pool dingtalk threads=1;")
    assert ngx.post("/small", notification()).status == 200  # TLS and the thread warmed up
    before = rss_anon_kb(ngx)
    assert ngx.post("/big", notification()).status == 200
    grown = rss_anon_kb(ngx) - before
    assert SANITIZED or grown < 500, f"the first delivery with the big bundle took {grown} kB"


def test_tls_secrets_are_not_logged_to_the_file_sslkeylogfile_names(nginx_factory, tls_mock,
                                                                     certs, tmp_path):
    """libcurl writes every TLS secret to the file SSLKEYLOGFILE names when it is set up; it
    is set up in nginx's master, whose environment is the one nginx started with."""
    os.chmod(tmp_path, 0o777)
    keylog = tmp_path / "keys.log"
    ngx = nginx_factory(locations(tls_mock, hook=certs.ca), env={"SSLKEYLOGFILE": str(keylog)})
    assert ngx.post("/hook", notification()).status == 200
    assert not keylog.exists() or keylog.read_text() == "", "TLS secrets were logged"
