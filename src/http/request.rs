//! A parsed request: a zero-copy view of its head and body.

use std::ops::Range;

use bytes::Bytes;

/// One HTTP/1.x request. The head and body are [`Bytes`] slices of the connection's input
/// (no copy); names and values are read from them on demand.
#[derive(Debug, Default)]
pub struct Request {
    pub(crate) head: Bytes,
    pub(crate) body: Bytes,
    pub(crate) method: Range<usize>,
    pub(crate) path: Range<usize>,
    pub(crate) minor_version: u8,
    /// (name, value) ranges into `head`; the vector's capacity is reused across requests.
    pub(crate) headers: Vec<(Range<usize>, Range<usize>)>,
}

impl Request {
    /// The method, e.g. `"GET"`.
    pub fn method(&self) -> &str {
        self.text(&self.method)
    }

    /// The request target, e.g. `"/plaintext?x=1"`.
    pub fn path(&self) -> &str {
        self.text(&self.path)
    }

    /// The minor version: `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub fn minor_version(&self) -> u8 {
        self.minor_version
    }

    /// The first header named `name` (compared without regard to case).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Every header, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers
            .iter()
            .map(|(n, v)| (self.text(n), &self.head[v.clone()]))
    }

    /// The body (empty without `Content-Length`).
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The raw request head, request line to the blank line included.
    pub fn head(&self) -> &Bytes {
        &self.head
    }

    /// Whether this is a `GET` or `HEAD` of exactly `path` (compared as bytes, no UTF-8
    /// check: this runs for every request when a metrics path is set).
    #[inline]
    pub(crate) fn is_get(&self, path: &str) -> bool {
        // Most requests are for other paths: the lengths tell first.
        if self.path.len() != path.len() {
            return false;
        }
        let method = &self.head[self.method.clone()];
        &self.head[self.path.clone()] == path.as_bytes() && (method == b"GET" || method == b"HEAD")
    }

    fn text(&self, range: &Range<usize>) -> &str {
        // httparse admits only ASCII token and URI characters in these fields.
        std::str::from_utf8(&self.head[range.clone()]).unwrap_or("")
    }
}
