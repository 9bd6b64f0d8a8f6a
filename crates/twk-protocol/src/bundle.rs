//! twk's metadata of one forwarded request in a single header value ([`crate::meta::BUNDLE`]),
//! for clients that name [`crate::upgrade::ACCEPTS_BUNDLED_META`] when they connect.
//!
//! Seven `x-twk-*` headers a request cost both ends seven HPACK entries to code, seven header
//! names to parse and seven map entries to insert and remove; the values are short, and three
//! of them change on every request, so the table could not index them anyway. One value now
//! holds them: the relay marks it never-indexed, as it did those three. The public URL stays a
//! header of its own ([`crate::meta::PUBLIC_URL`]): it is the same on most requests of a
//! tunnel, and HPACK indexes it.
//!
//! The value is a format version, then each field as its length in decimal, a colon and its
//! bytes, in a fixed order: `1:1` `<n>:<request id>` `<n>:<received at, Unix ms>`
//! `<n>:<deadline, ms>` `<n>:<remote address>` `<n>:<proto>` `<n>:<host>` `<n>:<prefix>`,
//! with nothing between them (an empty prefix: none). Lengths, not separators, so a `Host` as
//! a sender wrote it cannot shift a field. It is not a general encoding: each field is text
//! that is valid in a header value, checked where the value is made.

/// The format version this side writes and reads.
const VERSION: &[u8] = b"1";

/// One request's metadata, borrowed from where it was made or read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bundle<'a> {
    /// The relay's id for the request.
    pub request_id: &'a str,
    /// When the relay received the request head, Unix milliseconds.
    pub received_ms: i64,
    /// The deadline for the local target, milliseconds.
    pub deadline_ms: u64,
    /// The sender's address as the relay saw it (`ip:port`), or as a trusted proxy
    /// reported it.
    pub remote_addr: &'a str,
    /// The public URL's scheme.
    pub proto: &'a str,
    /// The `Host` the sender addressed.
    pub host: &'a str,
    /// Under path routing, the prefix the relay removed (`/t/<name>`).
    pub prefix: Option<&'a str>,
}

/// Why a bundle could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// A format this side does not read.
    #[error("metadata bundle of an unknown format")]
    Version,
    /// A length or a field that is not there, or is not what the field holds.
    #[error("malformed metadata bundle (field {0})")]
    Field(usize),
}

impl<'a> Bundle<'a> {
    /// The header value's bytes.
    pub fn encode(&self) -> Vec<u8> {
        // Numbers written on the stack: a `to_string` each was ten allocations a request.
        let (mut received, mut deadline) = (itoa::Buffer::new(), itoa::Buffer::new());
        let fields = [
            VERSION,
            self.request_id.as_bytes(),
            received.format(self.received_ms).as_bytes(),
            deadline.format(self.deadline_ms).as_bytes(),
            self.remote_addr.as_bytes(),
            self.proto.as_bytes(),
            self.host.as_bytes(),
            self.prefix.unwrap_or_default().as_bytes(),
        ];
        let mut out = Vec::with_capacity(fields.iter().map(|f| f.len() + 4).sum());
        let mut len = itoa::Buffer::new();
        for field in fields {
            out.extend_from_slice(len.format(field.len()).as_bytes());
            out.push(b':');
            out.extend_from_slice(field);
        }
        out
    }

    /// Reads a header value made by [`Bundle::encode`].
    pub fn decode(value: &'a [u8]) -> Result<Bundle<'a>, BundleError> {
        let mut rest = value;
        let mut n = 0;
        let mut next = || {
            n += 1;
            let (field, after) = split_field(rest).ok_or(BundleError::Field(n))?;
            rest = after;
            Ok::<_, BundleError>((n, field))
        };
        if next()?.1 != VERSION {
            return Err(BundleError::Version);
        }
        let bundle = Bundle {
            request_id: text(next()?)?,
            received_ms: number(next()?)?,
            deadline_ms: number(next()?)?,
            remote_addr: text(next()?)?,
            proto: text(next()?)?,
            host: text(next()?)?,
            prefix: Some(text(next()?)?).filter(|p| !p.is_empty()),
        };
        if !rest.is_empty() {
            return Err(BundleError::Field(n + 1));
        }
        Ok(bundle)
    }
}

fn text((n, f): (usize, &[u8])) -> Result<&str, BundleError> {
    std::str::from_utf8(f).map_err(|_| BundleError::Field(n))
}

fn number<T: std::str::FromStr>((n, f): (usize, &[u8])) -> Result<T, BundleError> {
    text((n, f))?.parse().map_err(|_| BundleError::Field(n))
}

/// `<len>:<bytes>` at the start of `s`: the bytes and what follows them.
fn split_field(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut len = 0usize;
    // A length of more than six digits is no field of a header value.
    for (i, &b) in s.iter().enumerate().take(7) {
        match b {
            b'0'..=b'9' => len = len * 10 + usize::from(b - b'0'),
            b':' if i > 0 => {
                let body = s.get(i + 1..)?;
                return Some((body.get(..len)?, body.get(len..)?));
            }
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Bundle<'static> {
        Bundle {
            request_id: "r1a2b-42",
            received_ms: 1_765_000_000_123,
            deadline_ms: 9_000,
            remote_addr: "[2001:db8::1]:443",
            proto: "https",
            host: "a.relay.example:8443",
            prefix: Some("/t/a"),
        }
    }

    #[test]
    fn a_bundle_reads_back_as_it_was_made() {
        let b = sample();
        let v = b.encode();
        assert_eq!(
            std::str::from_utf8(&v).unwrap(),
            "1:18:r1a2b-4213:17650000001234:900017:[2001:db8::1]:4435:https20:a.relay.example:84434:/t/a"
        );
        assert_eq!(Bundle::decode(&v).unwrap(), b);
        let none = Bundle { prefix: None, ..b };
        assert_eq!(Bundle::decode(&none.encode()).unwrap(), none);
    }

    #[test]
    fn a_malformed_bundle_is_an_error_not_a_guess() {
        let v = sample().encode();
        for cut in 0..v.len() {
            assert!(Bundle::decode(&v[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = v.clone();
        longer.extend_from_slice(b"0:");
        assert_eq!(Bundle::decode(&longer), Err(BundleError::Field(9)));
        assert_eq!(Bundle::decode(b"1:2"), Err(BundleError::Version));
        for odd in [
            &b"1:11:x"[..],
            b"1:1+1:x",
            b"1:1 :x",
            b"1:1-1:x",
            b"1:199999999:x",
            b":",
        ] {
            assert!(Bundle::decode(odd).is_err(), "{odd:?}");
        }
        let mut bad_time = sample();
        bad_time.request_id = "x";
        let v = String::from_utf8(bad_time.encode()).unwrap();
        let v = v.replace("13:1765000000123", "3:abc");
        assert_eq!(Bundle::decode(v.as_bytes()), Err(BundleError::Field(3)));
    }

    proptest! {
        /// Whatever the text fields hold (colons and digits included), they read back.
        #[test]
        fn any_fields_round_trip(
            id in "[ -~]{0,40}",
            addr in "[ -~]{0,60}",
            host in "\\PC{0,60}",
            prefix in "[ -~]{0,30}",
            received in any::<i64>(),
            deadline in any::<u64>(),
        ) {
            let b = Bundle {
                request_id: &id,
                received_ms: received,
                deadline_ms: deadline,
                remote_addr: &addr,
                proto: "http",
                host: &host,
                prefix: Some(prefix.as_str()).filter(|p| !p.is_empty()),
            };
            let v = b.encode();
            prop_assert_eq!(Bundle::decode(&v).unwrap(), b);
        }

        /// Bytes from anywhere never panic the reader.
        #[test]
        fn any_bytes_are_read_or_refused(v in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Bundle::decode(&v);
        }
    }
}
