"""OCPP 1.6 security profiles 1 and 2 on the real interpreter: HTTP Basic
authentication with the AuthorizationKey, and wss:// with the server
certificate checked against the CA installed on the board."""
import os
import ssl
import time

import trustme

from tests.integration.conftest import TAGS
from tests.integration.csms_harness import strict_csms
from tests.integration.rig import Rig

KEY = "0123456789abcdef0123"


def test_basic_auth_with_authorization_key(tmp_path):
    with strict_csms(tags=dict(TAGS), auth_keys={"CP1": KEY}) as cs:
        with Rig(tmp_path, cs, config={"AuthorizationKey": KEY}) as rig:
            res = rig.call("GetConfiguration", {"key": ["AuthorizationKey"]})
            assert res["configurationKey"] == [{"key": "AuthorizationKey", "readonly": False}]
            assert "unknownKey" not in res


def test_wrong_authorization_key_is_refused_and_retried(tmp_path):
    with strict_csms(tags=dict(TAGS), auth_keys={"CP1": KEY}) as cs:
        rig = Rig(tmp_path, cs, config={"AuthorizationKey": "ffffffffffffffffffff"})
        with rig.bench:
            time.sleep(4)
            refused = [c for c in cs.connections if c["event"] == "rejected"]
            assert len(refused) >= 2, cs.connections
            assert not [m for m in cs.messages if m["action"] == "BootNotification"]
            assert "Traceback" not in rig.firmware_log(300)


def _tls_csms(ca, host="127.0.0.1"):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(host, "localhost").configure_cert(ctx)
    return ctx


def _factory_ca(state, ca):
    flash = os.path.join(str(state), "flash")
    os.makedirs(flash, exist_ok=True)
    ca.cert_pem.write_to_path(os.path.join(flash, "ca.pem"))


def test_wss_with_the_installed_ca(tmp_path):
    ca = trustme.CA()
    with strict_csms(tags=dict(TAGS), ssl_context=_tls_csms(ca)) as cs:
        assert cs.url.startswith("wss://")
        rig = Rig(tmp_path, cs)
        _factory_ca(rig.state, ca)
        with rig:
            rig.wait_call("BootNotification")


def test_wss_refuses_a_server_the_ca_does_not_vouch_for(tmp_path):
    with strict_csms(tags=dict(TAGS), ssl_context=_tls_csms(trustme.CA())) as cs:
        rig = Rig(tmp_path, cs)
        _factory_ca(rig.state, trustme.CA())  # a different CA
        with rig.bench:
            time.sleep(4)
            assert not [m for m in cs.messages if m["action"] == "BootNotification"]
            log = rig.firmware_log(300)
            assert "connect failed" in log and "Traceback" not in log
