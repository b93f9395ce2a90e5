//! SSRF protection: which addresses a webhook may reach, and a DNS resolver that drops the
//! others, so the check happens after resolution, at connect time (a name that resolves to a
//! public address when the endpoint is saved and to 127.0.0.1 later is still caught).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Whether a webhook must not connect to `ip` (loopback, private, link-local, cloud metadata,
/// and every range that is not the public internet), looking inside IPv4-mapped,
/// IPv4-compatible, NAT64 and 6to4 IPv6 addresses.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_unspecified()        // 0.0.0.0
        || a == 0              // 0.0.0.0/8 ("this network", reaches localhost on Linux)
        || ip.is_loopback()    // 127.0.0.0/8
        || ip.is_private()     // 10/8, 172.16/12, 192.168/16
        || ip.is_link_local()  // 169.254/16, with the 169.254.169.254 metadata service
        || (a == 100 && (64..128).contains(&b)) // 100.64/10 shared (CGNAT; Alibaba metadata)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // 192.0.0/24 protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // 198.18/15 benchmarking
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a >= 240 // 240/4 reserved
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return forbidden_v4(v4);
    }
    let first = ip.segments()[0];
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // fc00::/7 unique local (AWS metadata fd00:ec2::254)
        || (first & 0xffc0) == 0xfe80 // fe80::/10 link-local
        || (first & 0xffc0) == 0xfec0 // fec0::/10 old site-local
        || first == 0x2001 && ip.segments()[1] == 0x0db8 // documentation
        || first == 0x0100 && ip.segments()[1..4] == [0, 0, 0] // 100::/64 discard
}

/// The IPv4 address an IPv6 address carries, where the network would deliver to it.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        // ::ffff:a.b.c.d (IPv4-mapped)
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(tail),
        // ::a.b.c.d (IPv4-compatible, deprecated; ::1 and :: are not)
        [0, 0, 0, 0, 0, 0, _, _] if !ip.is_loopback() && !ip.is_unspecified() => Some(tail),
        // 64:ff9b::a.b.c.d (NAT64)
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        // 2002:abcd:efgh::/48 (6to4)
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

/// reqwest's resolver for webhooks: the system's resolution, without forbidden addresses. A
/// name with none left is refused, and no connection is tried.
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = reachable(&host, found, allow_private)?;
            let addresses: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addresses)
        })
    }
}

/// The resolved addresses a webhook may connect to; an error when none is left.
pub fn reachable(
    host: &str,
    found: Vec<SocketAddr>,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
    if found.is_empty() {
        return Err(format!("{host} does not resolve").into());
    }
    let allowed: Vec<SocketAddr> = found
        .into_iter()
        .filter(|address| allow_private || !is_forbidden(address.ip()))
        .collect();
    if allowed.is_empty() {
        return Err(refused(host).into());
    }
    Ok(allowed)
}

pub fn refused(host: &str) -> String {
    format!(
        "refused: {host} is a loopback, private, link-local or metadata address (CHATDESK_WEBHOOK_ALLOW_PRIVATE is off)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(text: &str) -> bool {
        is_forbidden(text.parse().unwrap())
    }

    #[test]
    fn private_loopback_link_local_and_metadata_are_forbidden() {
        for ip in [
            "127.0.0.1",
            "127.1.2.3",
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "172.16.5.4",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.0.1",
            "100.64.0.1",
            "100.100.100.200",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd00:ec2::254",
            "ff02::1",
        ] {
            assert!(forbidden(ip), "{ip} should be forbidden");
        }
    }

    #[test]
    fn ipv4_inside_ipv6_is_looked_into() {
        for ip in [
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "2002:c0a8:0101::1",
        ] {
            assert!(forbidden(ip), "{ip} should be forbidden");
        }
        assert!(!forbidden("::ffff:93.184.216.34"));
        assert!(!forbidden("2002:5db8:d822::1"));
    }

    /// A public-looking name whose DNS answer is loopback or metadata (rebinding) is refused
    /// after resolution; a mixed answer keeps only the public addresses.
    #[test]
    fn resolved_names_are_filtered_after_dns() {
        let at = |ip: &str| SocketAddr::new(ip.parse().unwrap(), 0);
        let rebinding = vec![at("127.0.0.1"), at("::1"), at("169.254.169.254")];
        let error = reachable("hooks.example.com", rebinding.clone(), false).unwrap_err();
        assert!(error.to_string().starts_with("refused: hooks.example.com"));
        assert_eq!(
            reachable("hooks.example.com", rebinding, true)
                .unwrap()
                .len(),
            3
        );
        let mixed = vec![at("10.0.0.7"), at("93.184.216.34")];
        assert_eq!(
            reachable("hooks.example.com", mixed, false).unwrap(),
            vec![at("93.184.216.34")]
        );
        assert!(reachable("nowhere.example", Vec::new(), true).is_err());
    }

    #[test]
    fn public_addresses_are_allowed() {
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
        ] {
            assert!(!forbidden(ip), "{ip} should be allowed");
        }
    }
}
