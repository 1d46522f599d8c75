//! Webhook targets: which URLs a subscription may send to, and which addresses the
//! client may dial (SSRF protection).
//!
//! A target is refused if it names, or resolves to, an address that is not a public
//! unicast one: loopback, private (RFC 1918, unique-local), link-local (cloud metadata
//! lives there: 169.254.169.254), CGNAT (100.64/10), multicast, broadcast, unspecified,
//! documentation and benchmarking ranges, and the IPv4-mapped and -compatible IPv6
//! forms of any of those. The check runs twice: on the URL when the subscription is
//! created or changed ([`check_url`]), and on every address the connector is about to
//! dial ([`forbidden`]), so a name that resolves to a private address later (DNS
//! rebinding) is refused when it matters.
//!
//! Hosts are read as a browser reads them (WHATWG URL host parsing): `2130706433`,
//! `0x7f.1` and `0177.0.0.1` are all 127.0.0.1, and `[::ffff:127.0.0.1]` is too, so no
//! spelling of a literal passes the first check. The C resolver reads them the same way
//! (`inet_aton`), and the dial-time check catches whatever a name resolves to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a target is refused, for the `422 target_not_allowed` and the attempt's error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not an absolute `http` or `https` URL.
    #[error("target_url must be an absolute http:// or https:// URL: {0}")]
    Malformed(String),
    /// A URL with a user name or password in it (they would be sent to the endpoint in
    /// the clear, and logged).
    #[error("target_url must not carry credentials; send them in the subscription's headers")]
    Credentials,
    /// It names or resolves to an address that is not public.
    #[error("{host} is {reason}; webhook targets must be public addresses (start the server with --allow-private-targets to lift this)")]
    Forbidden {
        /// The host as given.
        host: String,
        /// What kind of address it is.
        reason: &'static str,
    },
}

/// A checked target: what the client needs to dial and sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `https` or `http`.
    pub https: bool,
    /// The host, as the URL spells it (brackets removed from an IPv6 literal).
    pub host: String,
    /// The port, explicit or the scheme's.
    pub port: u16,
}

impl Target {
    /// The endpoint's origin, `scheme://host:port`: what the circuit breaker is kept by.
    pub fn origin(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// Checks a target URL: its shape, and, unless `allow_private`, that its host is not a
/// forbidden literal address or a name that always means this machine (`localhost`).
/// Other names are checked when they are dialled.
pub fn check_url(url: &str, allow_private: bool) -> Result<Target, TargetError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| TargetError::Malformed(e.to_string()))?;
    let https = match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("https") => true,
        Some(s) if s.eq_ignore_ascii_case("http") => false,
        _ => {
            return Err(TargetError::Malformed(format!(
                "{url:?} has no http(s) scheme"
            )))
        }
    };
    let authority = uri
        .authority()
        .ok_or_else(|| TargetError::Malformed(format!("{url:?} has no host")))?;
    if authority.as_str().contains('@') {
        return Err(TargetError::Credentials);
    }
    let raw_host = authority.host();
    if raw_host.is_empty() {
        return Err(TargetError::Malformed(format!("{url:?} has no host")));
    }
    let host = raw_host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(raw_host)
        .to_ascii_lowercase();
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let target = Target { https, host, port };
    if allow_private {
        return Ok(target);
    }
    let refuse = |reason| TargetError::Forbidden {
        host: raw_host.to_owned(),
        reason,
    };
    if let Some(ip) = literal_address(&target.host) {
        if let Some(reason) = forbidden(ip) {
            return Err(refuse(reason));
        }
    } else {
        let name = target.host.trim_end_matches('.');
        if name == "localhost" || name.ends_with(".localhost") {
            return Err(refuse("a name for this machine (localhost)"));
        }
    }
    Ok(target)
}

/// The address a host spells, if it spells one: an IPv6 literal, or an IPv4 address in
/// any of the forms a browser or `inet_aton` accepts.
pub fn literal_address(host: &str) -> Option<IpAddr> {
    if let Ok(v6) = host.parse::<Ipv6Addr>() {
        return Some(IpAddr::V6(v6));
    }
    lenient_ipv4(host).map(IpAddr::V4)
}

/// WHATWG IPv4 parsing: 1 to 4 dot-separated numbers (decimal, `0x` hex, or `0`-led
/// octal), the last filling the remaining bytes. `None` when the host is not one.
fn lenient_ipv4(host: &str) -> Option<Ipv4Addr> {
    let host = host.strip_suffix('.').unwrap_or(host);
    let parts: Vec<&str> = host.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut numbers = Vec::with_capacity(parts.len());
    for part in &parts {
        numbers.push(number(part)?);
    }
    let (last, init) = numbers.split_last()?;
    if init.iter().any(|&n| n > 255) {
        return None;
    }
    let room = 8 * (4 - init.len() as u32);
    if room < 64 && *last >= 1u64 << room {
        return None;
    }
    let mut value: u64 = *last;
    for (i, &n) in init.iter().enumerate() {
        value |= n << (8 * (3 - i as u32));
    }
    u32::try_from(value).ok().map(Ipv4Addr::from)
}

/// One part of a lenient IPv4 address.
fn number(part: &str) -> Option<u64> {
    if part.is_empty() {
        return None;
    }
    let (digits, radix) =
        if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            (hex, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (part, 10)
        };
    if digits.is_empty() {
        return Some(0); // "0x" alone is 0, as browsers read it
    }
    u64::from_str_radix(digits, radix)
        .ok()
        .filter(|&n| n <= u64::from(u32::MAX))
}

/// Why an address may not be dialled, or `None` for a public unicast address.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            // IPv4-mapped (::ffff:a.b.c.d) and the deprecated IPv4-compatible (::a.b.c.d)
            // forms reach the IPv4 address they carry.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4).map(|_| "an IPv4-mapped private or local address");
            }
            let s = v6.segments();
            if s[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified() {
                let v4 =
                    Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
                return forbidden_v4(v4).map(|_| "an IPv4-compatible private or local address");
            }
            forbidden_v6(v6)
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    Some(if ip.is_loopback() {
        "a loopback address"
    } else if ip.is_unspecified() || o[0] == 0 {
        "an unspecified address (\"this network\")"
    } else if ip.is_private() {
        "a private address"
    } else if ip.is_link_local() {
        "a link-local address (cloud metadata lives at 169.254.169.254)"
    } else if o[0] == 100 && (o[1] & 0xC0) == 64 {
        "a carrier-grade NAT address"
    } else if ip.is_multicast() {
        "a multicast address"
    } else if ip.is_broadcast() || o[0] >= 240 {
        "a reserved or broadcast address"
    } else if ip.is_documentation() {
        "a documentation address"
    } else if o[0] == 198 && (o[1] & 0xFE) == 18 {
        "a benchmarking address"
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        "an IETF protocol-assignment address"
    } else {
        return None;
    })
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    Some(if ip.is_loopback() {
        "a loopback address"
    } else if ip.is_unspecified() {
        "an unspecified address"
    } else if (s[0] & 0xFE00) == 0xFC00 {
        "a unique-local (private) address"
    } else if (s[0] & 0xFFC0) == 0xFE80 {
        "a link-local address"
    } else if ip.is_multicast() {
        "a multicast address"
    } else if s[0] == 0x2001 && s[1] == 0x0DB8 {
        "a documentation address"
    } else if s[0] == 0x0064 && s[1] == 0xFF9B && s[2..6] == [0; 4] {
        // NAT64 (64:ff9b::/96) reaches the IPv4 address in its low 32 bits.
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return forbidden_v4(v4).map(|_| "a NAT64 form of a private or local address");
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The literal forms DESIGN.md names, and their relatives.
    #[test]
    fn every_spelling_of_a_private_address_is_refused() {
        for url in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[::127.0.0.1]/",
            "http://[64:ff9b::7f00:1]/",
            "http://0.0.0.0/",
            "http://0/",
            "http://[::]/",
            "http://localhost/",
            "http://LOCALHOST./",
            "http://app.localhost:8080/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1:8443/x",
            "http://169.254.169.254/latest/meta-data/",
            "http://100.64.0.1/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
            "http://192.0.2.1/",
            "http://198.18.0.1/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[ff02::1]/",
            "http://[2001:db8::1]/",
        ] {
            let err = check_url(url, false).expect_err(url);
            assert!(matches!(err, TargetError::Forbidden { .. }), "{url}: {err}");
            assert!(
                check_url(url, true).is_ok(),
                "{url} with private targets allowed"
            );
        }
    }

    #[test]
    fn public_targets_and_names_pass_and_bad_shapes_do_not() {
        for url in [
            "https://example.com/hook",
            "http://93.184.216.34/",
            "https://[2606:4700::1111]:8443/x",
            "http://1.1.1.1:80/",
            "https://hooks.example.com:8443/path?q=1",
        ] {
            check_url(url, false).unwrap_or_else(|e| panic!("{url}: {e}"));
        }
        for url in [
            "ftp://example.com/",
            "example.com/hook",
            "https://",
            "http:///x",
        ] {
            assert!(
                matches!(check_url(url, false), Err(TargetError::Malformed(_))),
                "{url}"
            );
        }
        assert_eq!(
            check_url("https://user:pw@example.com/", false),
            Err(TargetError::Credentials)
        );
        let t = check_url("https://[2606:4700::1111]/x", false).expect("target");
        assert_eq!(t.origin(), "https://[2606:4700::1111]:443");
        assert_eq!(t.port, 443);
    }

    #[test]
    fn lenient_ipv4_reads_like_a_browser() {
        assert_eq!(
            lenient_ipv4("2130706433"),
            Some(Ipv4Addr::new(127, 0, 0, 1))
        );
        assert_eq!(lenient_ipv4("0x7f.1"), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(lenient_ipv4("127.0.1"), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(
            lenient_ipv4("0300.0250.0.1"),
            Some(Ipv4Addr::new(192, 168, 0, 1))
        );
        assert_eq!(lenient_ipv4("1.2.3.4."), Some(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(lenient_ipv4("example.com"), None);
        assert_eq!(lenient_ipv4("1.2.3.4.5"), None);
        assert_eq!(lenient_ipv4("256.1.1.1"), None);
        assert_eq!(lenient_ipv4("1.2.65536"), None);
        assert_eq!(lenient_ipv4("4294967296"), None);
        assert_eq!(lenient_ipv4("08"), None, "8 is not an octal digit");
    }
}
