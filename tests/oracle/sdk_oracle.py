"""The official webhook SDKs as a test oracle for twk (see client/tests/sdk_oracle.rs).

Reads a JSON list of operations on stdin and writes a JSON list of results, one per operation,
in order. An operation signs a request with the provider's SDK or validates one with it:

    {"op": "sign" | "verify", "provider": "stripe", "secret": "...", "method": "POST",
     "url": "...", "headers": [["Name", "value"], ...], "body": "...", "now": 1700000000,
     "tolerance": 300 | null, "timestamp": 1699999990, "id": "msg_1", "claims": {...},
     "signers": ["secret", ...], "sign_url": "..." | null}

sign    -> {"headers": [[name, value], ...], "url": new URL | null, "body": new body | null}
verify  -> {"valid": bool, "why": "the SDK's exception, if any"}

Every signature is computed and every request is validated by the SDK's own code; this file
only adapts a request to the SDK's calling convention (what a web framework would hand it) and
fixes the SDK's clock to the operation's "now". GitHub and Shopify have no Python SDK: their
documented HMAC is computed with the standard library.
"""

import base64
import datetime as _dt
import hashlib
import hmac
import json
import sys
import types
from urllib.parse import parse_qsl, urlsplit

import jwt
import jwt.api_jwt
import slack_sdk.signature
import standardwebhooks.webhooks
import stripe
import stripe._webhook
import svix.webhooks
from authy.api.resources import OneTouch
from twilio.request_validator import RequestValidator, get_signature_algorithm


def header(op, name):
    for n, v in op.get("headers", []):
        if n.lower() == name.lower():
            return v
    return None


def fix_clock(now):
    """Makes every SDK read `now` (whole seconds) as the current time."""

    class FixedDatetime(_dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return _dt.datetime.fromtimestamp(now, tz=tz)

    stripe._webhook.time = types.SimpleNamespace(time=lambda: now)
    standardwebhooks.webhooks.datetime = FixedDatetime
    jwt.api_jwt.datetime = FixedDatetime


class QueryDict(dict):
    """A multi-valued form, as Django's QueryDict hands it to twilio's validator."""

    def __init__(self, pairs):
        super().__init__()
        for k, v in pairs:
            self.setdefault(k, []).append(v)

    def getlist(self, key):
        return self[key]


# Twilio


def twilio_params(op, url):
    ctype = (header(op, "Content-Type") or "").lower()
    if "json" in ctype or "bodySHA256" in urlsplit(url).query:
        return op["body"]  # the raw body: validated through bodySHA256
    if op["method"].upper() == "GET":
        return {}
    return QueryDict(parse_qsl(op["body"], keep_blank_values=True))


def twilio_sign(op):
    v = RequestValidator(op["secret"])
    alg = get_signature_algorithm(header(op, "X-Twilio-Webhooks-Signature-Settings"))
    url = op["url"]
    signed_url = op.get("sign_url") or url
    params = twilio_params(op, url)
    new_url = None
    if isinstance(params, str):
        sep = "&" if urlsplit(url).query else "?"
        new_url = url + sep + "bodySHA256=" + v.compute_hash(params)
        signed_url, params = new_url, {}
    sig = v.compute_signature(signed_url, params, alg)
    return {"headers": [["X-Twilio-Signature", sig]], "url": new_url, "body": None}


def twilio_verify(op):
    v = RequestValidator(op["secret"])
    alg = get_signature_algorithm(header(op, "X-Twilio-Webhooks-Signature-Settings"))
    sig = header(op, "X-Twilio-Signature") or ""
    return v.validate(op["url"], twilio_params(op, op["url"]), sig, algorithm=alg)


# Authy OneTouch


def authy_url(url):
    parts = urlsplit(url)
    return parts._replace(query="", fragment="").geturl()


def authy_params(op):
    if op["method"].upper() == "GET":
        return dict(parse_qsl(urlsplit(op["url"]).query, keep_blank_values=True))
    return json.loads(op["body"])


class Capture(str):
    """A signature that records what the SDK compares it with: the SDK's own signature."""

    computed = None

    def __eq__(self, other):
        Capture.computed = other
        return False

    __hash__ = str.__hash__


def onetouch(op):
    return OneTouch("https://api.authy.com", op["secret"])


def authy_onetouch_sign(op):
    nonce = op["id"]
    Capture.computed = None
    onetouch(op).validate_one_touch_signature(
        Capture("?"), nonce, op["method"], authy_url(op["url"]), authy_params(op)
    )
    if not isinstance(Capture.computed, str):
        raise RuntimeError("authy-python did not compute a signature")
    return {
        "headers": [["X-Authy-Signature", Capture.computed], ["X-Authy-Signature-Nonce", nonce]],
        "url": None,
        "body": None,
    }


def authy_onetouch_verify(op):
    return onetouch(op).validate_one_touch_signature(
        header(op, "X-Authy-Signature") or "",
        header(op, "X-Authy-Signature-Nonce") or "",
        op["method"],
        authy_url(op["url"]),
        authy_params(op),
    )


# Authy webhooks (an HS256 JWT in the body field `body`)


def authy_webhook_sign(op):
    token = jwt.encode(op["claims"], op["secret"], algorithm="HS256")
    return {
        "headers": [["Content-Type", "application/json"]],
        "url": None,
        "body": json.dumps({"body": token}),
    }


def authy_webhook_verify(op):
    token = json.loads(op["body"])["body"]
    jwt.decode(token, op["secret"], algorithms=["HS256"], leeway=op.get("tolerance") or 0)
    return True


# Stripe


def stripe_sign(op):
    sigs = [
        stripe.WebhookSignature.generate_signature_header(op["body"], s, timestamp=op["timestamp"])
        for s in op.get("signers") or [op["secret"]]
    ]
    # One t= and every v1= (a secret rotation signs with each active secret).
    value = ",".join([sigs[0].split(",")[0]] + [s.split(",", 1)[1] for s in sigs])
    return {"headers": [["Stripe-Signature", value]], "url": None, "body": None}


def stripe_verify(op):
    stripe.WebhookSignature.verify_header(
        op["body"], header(op, "Stripe-Signature"), op["secret"], tolerance=op.get("tolerance")
    )
    return True


# Slack


class FixedClock(slack_sdk.signature.Clock):
    def __init__(self, now):
        self.at = now

    def now(self):
        return self.at


def slack_sign(op):
    ts = str(op["timestamp"])
    sig = slack_sdk.signature.SignatureVerifier(op["secret"]).generate_signature(
        timestamp=ts, body=op["body"]
    )
    return {
        "headers": [["X-Slack-Request-Timestamp", ts], ["X-Slack-Signature", sig]],
        "url": None,
        "body": None,
    }


def slack_verify(op):
    verifier = slack_sdk.signature.SignatureVerifier(op["secret"], clock=FixedClock(op["now"]))
    return verifier.is_valid_request(op["body"], dict(op["headers"]))


# GitHub and Shopify: their documented HMAC (no Python SDK)


def mac(secret, body):
    return hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()


def github_sign(op):
    value = "sha256=" + mac(op["secret"], op["body"]).hex()
    return {"headers": [["X-Hub-Signature-256", value]], "url": None, "body": None}


def github_verify(op):
    expected = "sha256=" + mac(op["secret"], op["body"]).hex()
    return hmac.compare_digest(expected, header(op, "X-Hub-Signature-256") or "")


def shopify_sign(op):
    value = base64.b64encode(mac(op["secret"], op["body"])).decode()
    return {"headers": [["X-Shopify-Hmac-Sha256", value]], "url": None, "body": None}


def shopify_verify(op):
    expected = base64.b64encode(mac(op["secret"], op["body"])).decode()
    return hmac.compare_digest(expected, header(op, "X-Shopify-Hmac-Sha256") or "")


# Standard Webhooks and Svix


def sw_sign(op, svix_flavour):
    cls = svix.webhooks.Webhook if svix_flavour else standardwebhooks.webhooks.Webhook
    prefix = "svix" if svix_flavour else "webhook"
    at = _dt.datetime.fromtimestamp(op["timestamp"], tz=_dt.timezone.utc)
    sigs = [cls(s).sign(op["id"], at, op["body"]) for s in op.get("signers") or [op["secret"]]]
    return {
        "headers": [
            [prefix + "-id", op["id"]],
            [prefix + "-timestamp", str(op["timestamp"])],
            [prefix + "-signature", " ".join(sigs)],
        ],
        "url": None,
        "body": None,
    }


def sw_verify(op, svix_flavour):
    cls = svix.webhooks.Webhook if svix_flavour else standardwebhooks.webhooks.Webhook
    headers = dict(op["headers"])
    if svix_flavour:
        cls(op["secret"]).verify(op["body"], headers)
    else:
        cls(op["secret"]).verify(op["body"], headers, json_parse=False)
    return True


SIGN = {
    "twilio": twilio_sign,
    "authy-onetouch": authy_onetouch_sign,
    "authy-webhook": authy_webhook_sign,
    "stripe": stripe_sign,
    "slack": slack_sign,
    "github": github_sign,
    "shopify": shopify_sign,
    "standard-webhooks": lambda op: sw_sign(op, False),
    "svix": lambda op: sw_sign(op, True),
}
VERIFY = {
    "twilio": twilio_verify,
    "authy-onetouch": authy_onetouch_verify,
    "authy-webhook": authy_webhook_verify,
    "stripe": stripe_verify,
    "slack": slack_verify,
    "github": github_verify,
    "shopify": shopify_verify,
    "standard-webhooks": lambda op: sw_verify(op, False),
    "svix": lambda op: sw_verify(op, True),
}


def run(op):
    fix_clock(op.get("now", 0))
    if op["op"] == "sign":
        try:
            return SIGN[op["provider"]](op)
        except Exception as e:  # a harness problem: the Rust side fails the test with it
            return {"error": "%s: %s" % (type(e).__name__, e)}
    try:
        return {"valid": bool(VERIFY[op["provider"]](op)), "why": ""}
    except Exception as e:  # the SDK's way of saying "invalid"
        return {"valid": False, "why": "%s: %s" % (type(e).__name__, e)}


def main():
    if sys.argv[1:] == ["--check"]:
        print("oracle: SDKs import")
        return
    ops = json.load(sys.stdin)
    json.dump([run(op) for op in ops], sys.stdout)


if __name__ == "__main__":
    main()
