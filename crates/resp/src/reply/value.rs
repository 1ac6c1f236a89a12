//! [`Value`]: an owned decoded reply, for the rare paths where the proxy
//! merges replies instead of passing them through.

use bytes::{Bytes, BytesMut};

use crate::encode;

/// An owned decoded reply. Payloads are `Bytes` slices of the frame they
/// were decoded from (no copy), except folded streamed strings.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `+`
    Simple(Bytes),
    /// `-`, without the leading `-`.
    Error(Bytes),
    /// `:`
    Integer(i64),
    /// `$`, or a folded streamed string `$?`.
    Bulk(Bytes),
    /// `$-1`, `*-1` and `_`.
    Null,
    /// `*`
    Array(Vec<Value>),
    /// `,` kept as its text (`1.5`, `inf`, `-nan`...) so it round-trips.
    Double(Bytes),
    /// `#t` / `#f`
    Boolean(bool),
    /// `(` kept as its digits.
    BigNumber(Bytes),
    /// `!`
    BlobError(Bytes),
    /// `=`, including the three-letter format and colon (`txt:...`).
    Verbatim(Bytes),
    /// `%`, pairs in wire order.
    Map(Vec<(Value, Value)>),
    /// `~`
    Set(Vec<Value>),
    /// `>`, an out-of-band push.
    Push(Vec<Value>),
    /// `|` attributes (pairs in wire order) in front of the value they
    /// describe. Several consecutive attributes are merged into one.
    Attribute {
        /// The attribute pairs.
        attrs: Vec<(Value, Value)>,
        /// The value that followed them.
        value: Box<Value>,
    },
}

impl Value {
    /// Appends the value in RESP. [`Value::Null`] is written `$-1`, which
    /// RESP2 and RESP3 clients both read as null; RESP3-only types are
    /// written in RESP3 (they only come from RESP3 connections).
    pub fn encode(&self, out: &mut BytesMut) {
        self.encode_with_null(out, b"$-1\r\n");
    }

    /// Like [`encode`](Self::encode) but writes [`Value::Null`] as the
    /// RESP3 `_`.
    pub fn encode_resp3(&self, out: &mut BytesMut) {
        self.encode_with_null(out, b"_\r\n");
    }

    fn encode_with_null(&self, out: &mut BytesMut, null: &[u8]) {
        let pairs = |out: &mut BytesMut, kvs: &[(Value, Value)]| {
            for (k, v) in kvs {
                k.encode_with_null(out, null);
                v.encode_with_null(out, null);
            }
        };
        let all = |out: &mut BytesMut, vs: &[Value]| {
            for v in vs {
                v.encode_with_null(out, null);
            }
        };
        match self {
            Value::Simple(s) => encode::simple(out, s),
            Value::Error(e) => {
                out.extend_from_slice(b"-");
                out.extend_from_slice(e);
                out.extend_from_slice(b"\r\n");
            }
            Value::Integer(n) => encode::integer(out, *n),
            Value::Bulk(b) => encode::bulk(out, b),
            Value::Null => out.extend_from_slice(null),
            Value::Array(vs) => {
                encode::array_header(out, vs.len());
                all(out, vs);
            }
            Value::Double(d) => encode::double(out, d),
            Value::Boolean(b) => encode::boolean(out, *b),
            Value::BigNumber(n) => encode::big_number(out, n),
            Value::BlobError(e) => encode::blob_error(out, e),
            Value::Verbatim(v) => encode::verbatim(out, v),
            Value::Map(kvs) => {
                encode::map_header(out, kvs.len());
                pairs(out, kvs);
            }
            Value::Set(vs) => {
                encode::set_header(out, vs.len());
                all(out, vs);
            }
            Value::Push(vs) => {
                encode::push_header(out, vs.len());
                all(out, vs);
            }
            Value::Attribute { attrs, value } => {
                encode::attribute_header(out, attrs.len());
                pairs(out, attrs);
                value.encode_with_null(out, null);
            }
        }
    }

    /// The value itself, past any attributes.
    pub fn without_attributes(&self) -> &Value {
        let mut v = self;
        while let Value::Attribute { value, .. } = v {
            v = value;
        }
        v
    }

    /// The payload of a string: simple, bulk, or verbatim (without its
    /// `fmt:` prefix).
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self.without_attributes() {
            Value::Simple(b) | Value::Bulk(b) => Some(b),
            Value::Verbatim(b) => Some(b.get(4..).unwrap_or_default()),
            _ => None,
        }
    }

    /// The number of an integer reply.
    pub fn as_integer(&self) -> Option<i64> {
        match self.without_attributes() {
            Value::Integer(n) => Some(*n),
            _ => None,
        }
    }

    /// The message of an error reply (simple or blob).
    pub fn as_error(&self) -> Option<&[u8]> {
        match self.without_attributes() {
            Value::Error(b) | Value::BlobError(b) => Some(b),
            _ => None,
        }
    }

    /// Whether this is an error reply.
    pub fn is_error(&self) -> bool {
        self.as_error().is_some()
    }

    /// Whether this is a null.
    pub fn is_null(&self) -> bool {
        matches!(self.without_attributes(), Value::Null)
    }

    /// The elements of an array, set or push.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self.without_attributes() {
            Value::Array(vs) | Value::Set(vs) | Value::Push(vs) => Some(vs),
            _ => None,
        }
    }

    /// The pairs of a map.
    pub fn as_map(&self) -> Option<&[(Value, Value)]> {
        match self.without_attributes() {
            Value::Map(kvs) => Some(kvs),
            _ => None,
        }
    }
}
