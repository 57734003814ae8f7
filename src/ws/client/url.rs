//! What a `ws://` URL says: where to connect and what to ask for.

use std::fmt;

use crate::dial::Target;

/// A WebSocket server's address, parsed from a `ws://` (or, once TLS is there,
/// `wss://`) URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WsUrl {
    /// `wss://`: the connection needs TLS.
    pub secure: bool,
    /// Where the socket connects.
    pub target: Target,
    /// The `Host` header: the host, with the port unless it is the scheme's default.
    pub host_header: String,
    /// The host as TLS names it (what the server's certificate must be valid for): the
    /// DNS name, or the address without brackets.
    pub server_name: String,
    /// The request target: path and query (`/` at least).
    pub resource: String,
    /// The URL as given (for logs and errors).
    pub text: String,
}

/// A URL the client cannot connect to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlError {
    url: String,
    why: String,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad WebSocket URL {:?}: {}", self.url, self.why)
    }
}

impl std::error::Error for UrlError {}

impl WsUrl {
    /// Parses `text`: `ws://host[:port][/path][?query]`. A fragment is refused (RFC 6455
    /// §3), as are user names and passwords (nothing would send them).
    pub fn parse(text: &str) -> Result<WsUrl, UrlError> {
        let bad = |why: &str| UrlError {
            url: text.to_string(),
            why: why.to_string(),
        };
        let url = url::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
        let secure = match url.scheme() {
            "ws" => false,
            "wss" => true,
            other => return Err(bad(&format!("the scheme is {other:?}, not ws or wss"))),
        };
        if url.fragment().is_some() {
            return Err(bad("a WebSocket URL has no fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("user names and passwords in the URL are not sent"));
        }
        let default_port = if secure { 443 } else { 80 };
        let port = url.port().unwrap_or(default_port);
        let (target, host, server_name) = match url.host().ok_or_else(|| bad("no host"))? {
            url::Host::Domain(name) => (
                Target::Host {
                    host: name.to_string(),
                    port,
                },
                name.to_string(),
                name.to_string(),
            ),
            url::Host::Ipv4(ip) => (
                Target::Addr(crate::Addr::Tcp((ip, port).into())),
                ip.to_string(),
                ip.to_string(),
            ),
            url::Host::Ipv6(ip) => (
                Target::Addr(crate::Addr::Tcp((ip, port).into())),
                format!("[{ip}]"),
                ip.to_string(),
            ),
        };
        let host_header = if port == default_port {
            host
        } else {
            format!("{host}:{port}")
        };
        let mut resource = url.path().to_string();
        if resource.is_empty() {
            resource.push('/');
        }
        if let Some(q) = url.query() {
            resource.push('?');
            resource.push_str(q);
        }
        Ok(WsUrl {
            secure,
            target,
            host_header,
            server_name,
            resource,
            text: text.to_string(),
        })
    }
}

impl fmt::Display for WsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_ports_paths_and_queries() {
        let u = WsUrl::parse("ws://127.0.0.1:9001/runCase?case=3&agent=x").unwrap();
        assert_eq!(u.target, Target::Addr("127.0.0.1:9001".parse().unwrap()));
        assert_eq!(u.host_header, "127.0.0.1:9001");
        assert_eq!(u.resource, "/runCase?case=3&agent=x");
        assert!(!u.secure);

        let u = WsUrl::parse("ws://example.com").unwrap();
        assert_eq!(
            u.target,
            Target::Host {
                host: "example.com".into(),
                port: 80
            }
        );
        assert_eq!(
            (u.host_header.as_str(), u.resource.as_str()),
            ("example.com", "/")
        );

        let u = WsUrl::parse("wss://[::1]:8443/chat").unwrap();
        assert!(u.secure);
        assert_eq!(u.server_name, "::1");
        assert_eq!(u.host_header, "[::1]:8443");
        assert_eq!(u.target, Target::Addr("[::1]:8443".parse().unwrap()));
    }

    #[test]
    fn urls_that_cannot_be_dialed_are_refused() {
        for bad in [
            "http://example.com/",
            "ws://example.com/#frag",
            "ws://user:pw@example.com/",
            "ws://",
            "not a url",
        ] {
            assert!(WsUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
