"""The flows of issue 17 against twk's emulator, driven by the official `twilio` SDK and by
Authy's Webhooks API as its demo (AuthySE/webhooks-api) signs it; for client/tests/emulator.rs.

    python emulator_flow.py verify|authy '<json config>'

The config names the emulator (base, credentials), the tunnel's public URL, the app (to read
what reached it), and the twk-tunnel binary (to fire events with `trigger --emulator`).
Every check is an assert: a failure exits non-zero with the reason. On success the last line
is a JSON report for the Rust side.
"""

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import jwt
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

CFG = json.loads(sys.argv[2])
V1 = {"uuid", "type", "account_sid", "service_sid", "entity_identity", "factor_sid", "challenge_sid"}


def app(method, path, body=None):
    req = urllib.request.Request(CFG["app"] + path, data=body, method=method)
    with urllib.request.urlopen(req) as r:
        raw = r.read()
    return json.loads(raw) if raw else None


def wait_count(route, n, within=10.0):
    """Waits until `n` requests reached `route` of the app (deliveries started by an API call
    go on after its answer, as Authy's do)."""
    deadline = time.time() + within
    while True:
        got = app("GET", "/count" + route)["count"]
        if got >= n or time.time() > deadline:
            assert got == n, (route, got, n)
            return
        time.sleep(0.02)


def fire(provider, event, *extra):
    out = subprocess.run(
        [CFG["bin"], "trigger", provider, event, "--emulator", "--json", *extra],
        capture_output=True, text=True, timeout=120,
    )
    lines = [json.loads(l) for l in out.stdout.splitlines() if l.strip()]
    return out.returncode, lines, out.stderr


def rest_error(fn):
    try:
        fn()
    except TwilioRestException as e:
        return e
    raise AssertionError("expected a Twilio error")


def client(user=None, password=None, account=None):
    c = Client(user or CFG["account_sid"], password or CFG["auth_token"], account)
    # The SDK's documented way to reach another host for one domain.
    c.verify.base_url = CFG["base"]
    return c


def verify_flow():
    c = client()
    svc = c.verify.v2.services.create(friendly_name="twk emulator test")
    assert svc.sid.startswith("VA") and len(svc.sid) == 34, svc.sid
    hooks = c.verify.v2.services(svc.sid).webhooks
    public = CFG["public"]
    a = hooks.create(friendly_name="a", event_types=["challenge.approved"], webhook_url=public + "/twilio/a")
    b = hooks.create(friendly_name="b", event_types=["factor.created"], webhook_url=public + "/twilio/b")
    d = hooks.create(friendly_name="d", event_types=["challenge.approved"], webhook_url=public + "/twilio/d")
    assert (a.status, a.version, a.webhook_method) == ("enabled", "v2", "POST"), a
    assert a.date_created is not None and a.date_created.year >= 2026, a.date_created

    # Paging: the SDK follows next_page_url until the end.
    page = hooks.page(page_size=2)
    assert page.next_page_url and len(list(page)) == 2, page.next_page_url
    listed = hooks.list(page_size=2)
    assert [w.friendly_name for w in listed] == ["a", "b", "d"], listed

    # Update: change events, switch v2 -> v1, disable, fetch what was stored.
    hooks(b.sid).update(event_types=["*"], resource_version="v1")
    hooks(d.sid).update(status="disabled")
    fetched = hooks(b.sid).fetch()
    assert fetched.event_types == ["*"] and fetched.version == "v1", fetched
    assert hooks(d.sid).fetch().status == "disabled"

    code, sent, err = fire("twilio", "challenge.approved")
    assert code == 0, (code, sent, err)
    assert sorted(s["webhook"] for s in sent) == sorted([a.sid, b.sid]), sent
    assert all(s["status"] == 200 and s["fate"] == "delivered" for s in sent), sent
    assert app("GET", "/count/twilio/d")["count"] == 0, "a disabled webhook got an event"
    v2 = dict(urllib.parse.parse_qsl(app("GET", "/last/twilio/a")["body"]))
    v1 = dict(urllib.parse.parse_qsl(app("GET", "/last/twilio/b")["body"]))
    assert set(v1) == V1, sorted(v1)
    for f in V1 | {"factor_type", "factor_friendly_name", "challenge_details"}:
        assert f in v2, (f, sorted(v2))
    assert v2["type"] == "challenge.approved" and v2["account_sid"] == CFG["account_sid"]
    assert v2["service_sid"] == svc.sid and v2["challenge_sid"] == v1["challenge_sid"]
    assert v2["uuid"] != v1["uuid"], "each delivery has its own uuid"

    # Unsubscribed: factor.verified reaches only the `*` webhook.
    code, sent, err = fire("twilio", "factor.verified")
    assert code == 0 and [s["webhook"] for s in sent] == [b.sid], (sent, err)

    # GET webhooks (the resource's webhook_method): fields in the query, the URL signed.
    c.request("POST", f"{CFG['base']}/v2/Services/{svc.sid}/Webhooks/{a.sid}", data={"WebhookMethod": "GET"})
    code, sent, err = fire("twilio", "challenge.approved")
    assert code == 0, (sent, err)
    last = app("GET", "/last/twilio/a")
    assert last["method"] == "GET" and "challenge_sid=" in last["query"] and last["body"] == "", last

    # Errors, as the real API documents them, and nothing half-created.
    e = rest_error(lambda: hooks.create(friendly_name="x", event_types=["challenge.approved", "nope"], webhook_url=public + "/x"))
    assert (e.status, e.code) == (400, 60200), (e.status, e.code, e.msg)
    e = rest_error(lambda: hooks.create(friendly_name="", event_types=["*"], webhook_url=public + "/x"))
    assert (e.status, e.code) == (400, 20001) and "FriendlyName" in e.msg, (e.status, e.code, e.msg)
    e = rest_error(lambda: hooks.create(friendly_name="x", event_types=["*"], webhook_url="not a url"))
    assert (e.status, e.code) == (400, 60200), (e.status, e.code)
    e = rest_error(lambda: hooks(b.sid).update(resource_version="v3"))
    assert (e.status, e.code) == (400, 60200)
    assert hooks(b.sid).fetch().version == "v1", "a refused update changed nothing"
    assert len(hooks.list()) == 3, "a refused create created nothing"
    e = rest_error(lambda: hooks("YW" + "0" * 32).fetch())
    assert (e.status, e.code) == (404, 20404)
    e = rest_error(lambda: client(password="wrong" * 6).verify.v2.services(svc.sid).webhooks(b.sid).fetch())
    assert (e.status, e.code) == (401, 20003), (e.status, e.code)

    # An API key and its secret stand in for the account SID and token.
    keyed = client(CFG["api_key_sid"], CFG["api_key_secret"], CFG["account_sid"])
    assert len(keyed.verify.v2.services(svc.sid).webhooks.list()) == 3

    # And back v1 -> v2: the next delivery carries the v2 fields again.
    hooks(b.sid).update(resource_version="v2")
    code, sent, err = fire("twilio", "factor.created")
    assert code == 0 and [s["version"] for s in sent] == ["v2"], (sent, err)
    assert "factor_type" in dict(urllib.parse.parse_qsl(app("GET", "/last/twilio/b")["body"]))

    # Delete: gone, and gets nothing more.
    hooks(a.sid).delete()
    assert rest_error(lambda: hooks(a.sid).fetch()).status == 404
    before = app("GET", "/count/twilio/a")["count"]
    code, sent, err = fire("twilio", "challenge.approved")
    assert [s["webhook"] for s in sent] == [b.sid], sent
    assert app("GET", "/count/twilio/a")["count"] == before
    return {"service": svc.sid, "fired": 5}


def authy_signature(method, url, params, nonce):
    """computeSig of AuthySE/webhooks-api: qs brackets, sorted by property, %20 as +."""
    parts = []
    for k, v in params:
        parts.append(urllib.parse.quote(k, safe="") + "=" + urllib.parse.quote(v, safe="~"))
    parts.sort(key=lambda p: p.split("="))
    data = "%s|%s|%s|%s" % (nonce, method, url, "&".join(parts).replace("%20", "+"))
    mac = hmac.new(CFG["authy_signing_key"].encode(), data.encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def authy(method, path, params=(), signing_key=None, nonce=None):
    url = CFG["base"] + path
    params = list(params) + [("app_api_key", CFG["authy_api_key"]), ("access_key", CFG["authy_access_key"])]
    nonce = nonce or "%.6f" % time.time()
    sig = authy_signature(method, url, params, nonce)
    body = urllib.parse.urlencode(params).encode()
    req = urllib.request.Request(url, data=body, method=method, headers={
        "X-Authy-Signature": sig if signing_key is None else signing_key,
        "X-Authy-Signature-Nonce": nonce,
        "Content-Type": "application/x-www-form-urlencoded",
    })
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def protected(method, path, params=(), key=None):
    q = urllib.parse.urlencode(list(params))
    req = urllib.request.Request(CFG["base"] + path + ("?" + q if q and method == "GET" else ""),
                                 data=q.encode() if method == "POST" else None, method=method,
                                 headers={"X-Authy-API-Key": key or CFG["authy_api_key"]})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def authy_flow():
    hooks = "/dashboard/json/application/webhooks"
    started = time.time() - 1
    url = CFG["public"] + "/authy-webhook/started"
    status, created = authy("POST", hooks, [("url", url), ("name", "phone_verification_started"),
                                            ("events[]", "phone_verification_started")])
    assert status == 200 and created["success"] and created["message"] == "Webhook created", created
    wh = created["webhook"]
    assert wh["signing_key"].startswith("WSK_") and wh["id"].startswith("WH_"), wh
    assert wh["events"] == ["phone_verification_started"] and wh["url"] == url, wh
    app("PUT", "/secret/authy-webhook", wh["signing_key"].encode())

    # The demo's trigger: start a phone verification.
    status, body = protected("POST", "/protected/json/phones/verification/start",
                             [("via", "sms"), ("country_code", "1"), ("phone_number", "5551234567")])
    assert status == 200 and body["success"], body
    wait_count("/authy-webhook/started", 1)
    token = json.loads(app("GET", "/last/authy-webhook/started")["body"])["body"]
    claims = jwt.decode(token, wh["signing_key"], algorithms=["HS256"])
    assert claims["event"] == "phone_verification_started", claims
    assert claims["objects"]["phone_number"] == "5551234567", claims

    code, sent, err = fire("authy-webhook", "phone_verification_started")
    assert code == 0 and [s["webhook"] for s in sent] == [wh["id"]], (sent, err)
    assert app("GET", "/count/authy-webhook/started")["count"] == 2
    code, sent, err = fire("authy-webhook", "user_added")
    assert code == 1 and sent == [], "an unsubscribed event reaches nobody"

    # List, as the demo does it (GET with the parameters in the body): no key in it.
    status, listed = authy("GET", hooks)
    assert status == 200 and [w["id"] for w in listed["webhooks"]] == [wh["id"]], listed
    assert listed["webhooks"][0]["signing_key"] == wh["signing_key"], "the list shows the key, as the seed's"

    # Refused: a bad signature, a wrong API key, an unknown event; nothing half-created.
    status, body = authy("GET", hooks, signing_key="bm90IGEgc2lnbmF0dXJl")
    assert status == 401 and not body["success"], body
    status, body = authy("POST", hooks, [("url", url), ("name", "x"), ("events[]", "user_added"),
                                         ("events[]", "no_such_event")])
    assert status == 400 and "no_such_event" in body["message"], body
    status, body = authy("POST", hooks, [("url", "ftp://x"), ("name", "x"), ("events[]", "user_added")])
    assert status == 400, body
    status, body = protected("GET", "/protected/json/reporting/events", key="wrong")
    assert status == 401, body
    assert len(authy("GET", hooks)[1]["webhooks"]) == 1

    # Reporting: the events, by type and time range.
    window = [("query[event][eq]", "phone_verification_started"),
              ("query[time][gte]", time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(started))),
              ("query[time][lte]", time.strftime("%Y-%m-%dT%H:%M:%S.999Z", time.gmtime(time.time() + 1)))]
    status, report = protected("GET", "/protected/json/reporting/events", window)
    assert status == 200 and report["success"], report
    assert [e["event"] for e in report["events"]] == ["phone_verification_started"] * 2, report
    assert all(e["request_id"] and e["time"].endswith("Z") for e in report["events"]), report
    past = [window[0], ("query[time][lte]", "2018-01-31T23:59:59.999Z")]
    assert protected("GET", "/protected/json/reporting/events", past)[1]["events"] == []

    status, body = authy("DELETE", hooks + "/" + wh["id"])
    assert status == 200 and body == {"message": "Webhook deleted", "success": True}, body
    assert authy("GET", hooks)[1]["webhooks"] == []
    assert authy("DELETE", hooks + "/" + wh["id"])[0] == 404
    return {"reported": len(report["events"])}


if __name__ == "__main__":
    flows = {"verify": verify_flow, "authy": authy_flow}
    print(json.dumps(flows[sys.argv[1]]()))
