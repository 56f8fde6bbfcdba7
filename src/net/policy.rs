//! Which addresses the probe may connect to (MEASUREMENTS §5).
//!
//! A domain list is untrusted input: a hostile domain can point its SRV or
//! A records at `127.0.0.1`, `10.0.0.1` or `169.254.169.254` and turn the
//! crawler into a scanner of its own network. By default every
//! non-global address is refused and recorded as `blocked_address`; the
//! local test network opts in explicitly with `--allow-private`.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is (or is not) special. Only `Global` is probed by default.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum AddressClass {
    /// Publicly routable unicast.
    Global,
    /// 127.0.0.0/8, ::1 (RFC 1122 §3.2.1.3, RFC 4291 §2.5.3).
    Loopback,
    /// 10/8, 172.16/12, 192.168/16 (RFC 1918), fc00::/7 (RFC 4193).
    Private,
    /// 100.64.0.0/10 carrier-grade NAT (RFC 6598).
    SharedCgnat,
    /// 169.254/16 (RFC 3927), fe80::/10 (RFC 4291 §2.5.6).
    LinkLocal,
    /// 224/4 (RFC 5771), ff00::/8 (RFC 4291 §2.7), 255.255.255.255.
    Multicast,
    /// 0.0.0.0/8 (RFC 1122), :: (RFC 4291 §2.5.2).
    Unspecified,
    /// Documentation, benchmarking, reserved and other special-purpose
    /// blocks (RFC 6890 registry): 192.0.0/24, 192.0.2/24, 198.18/15,
    /// 198.51.100/24, 203.0.113/24, 240/4, 2001:db8::/32, 100::/64, …
    Reserved,
}

/// The operator's choice of which address classes may be probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddressPolicy {
    /// Allow loopback, private, CGNAT and link-local unicast addresses
    /// (`--allow-private`). Multicast, unspecified and reserved stay blocked:
    /// no XMPP server lives there.
    pub allow_private: bool,
}

impl AddressPolicy {
    /// The default: only globally routable unicast.
    pub const STRICT: Self = Self {
        allow_private: false,
    };
    /// For the local test network and labs.
    pub const ALLOW_PRIVATE: Self = Self {
        allow_private: true,
    };

    /// Whether the probe may open a connection to `ip`.
    pub fn permits(self, ip: IpAddr) -> bool {
        match classify(ip) {
            AddressClass::Global => true,
            AddressClass::Loopback
            | AddressClass::Private
            | AddressClass::SharedCgnat
            | AddressClass::LinkLocal => self.allow_private,
            AddressClass::Multicast | AddressClass::Unspecified | AddressClass::Reserved => false,
        }
    }
}

/// Classifies an address. IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// and NAT64 (`64:ff9b::/96`, RFC 6052) IPv6 addresses are judged by the
/// IPv4 address they carry, so they cannot smuggle a private target.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, c, _] = ip.octets();
    if a == 0 {
        AddressClass::Unspecified
    } else if a == 127 {
        AddressClass::Loopback
    } else if a == 10 || (a == 172 && (16..=31).contains(&b)) || (a == 192 && b == 168) {
        AddressClass::Private
    } else if a == 100 && (64..=127).contains(&b) {
        AddressClass::SharedCgnat
    } else if a == 169 && b == 254 {
        AddressClass::LinkLocal
    } else if (224..=239).contains(&a) || ip == Ipv4Addr::BROADCAST {
        AddressClass::Multicast
    } else if a >= 240
        || (a == 192 && b == 0 && c == 0)
        || (a == 192 && b == 0 && c == 2)
        || (a == 198 && (18..=19).contains(&b))
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || (a == 192 && b == 88 && c == 99)
    {
        AddressClass::Reserved
    } else {
        AddressClass::Global
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let seg = ip.segments();
    if ip.is_unspecified() {
        return AddressClass::Unspecified;
    }
    if ip.is_loopback() {
        return AddressClass::Loopback;
    }
    // IPv4-mapped ::ffff:0:0/96 and deprecated IPv4-compatible ::/96.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if seg[..6] == [0, 0, 0, 0, 0, 0] {
        return classify_v4(Ipv4Addr::from(ip.to_bits() as u32));
    }
    // NAT64 well-known prefix 64:ff9b::/96 (RFC 6052 §2.1).
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return classify_v4(Ipv4Addr::from(ip.to_bits() as u32));
    }
    match seg[0] {
        s if s & 0xff00 == 0xff00 => AddressClass::Multicast,
        s if s & 0xfe00 == 0xfc00 => AddressClass::Private,
        s if s & 0xffc0 == 0xfe80 => AddressClass::LinkLocal,
        // Deprecated site-local fec0::/10 (RFC 3879): private in practice.
        s if s & 0xffc0 == 0xfec0 => AddressClass::Private,
        0x2001 if seg[1] == 0x0db8 => AddressClass::Reserved,
        // 2001::/23 IETF protocol assignments (Teredo 2001::/32, ORCHID, …).
        0x2001 if seg[1] < 0x0200 => AddressClass::Reserved,
        // 2002::/16 6to4 carries an IPv4 address: judge it by that.
        0x2002 => classify_v4(Ipv4Addr::new(
            (seg[1] >> 8) as u8,
            seg[1] as u8,
            (seg[2] >> 8) as u8,
            seg[2] as u8,
        )),
        // Discard-only 100::/64 (RFC 6666).
        0x0100 if seg[1..4] == [0, 0, 0] => AddressClass::Reserved,
        // Only 2000::/3 is global unicast today.
        s if s & 0xe000 == 0x2000 => AddressClass::Global,
        _ => AddressClass::Reserved,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> AddressClass {
        classify(s.parse().expect("test address"))
    }

    #[test]
    fn ipv4_ranges() {
        let table = [
            ("0.0.0.0", AddressClass::Unspecified),
            ("0.1.2.3", AddressClass::Unspecified),
            ("127.0.0.1", AddressClass::Loopback),
            ("127.0.3.17", AddressClass::Loopback),
            ("127.255.255.254", AddressClass::Loopback),
            ("10.0.0.1", AddressClass::Private),
            ("10.255.255.255", AddressClass::Private),
            ("172.16.0.1", AddressClass::Private),
            ("172.31.255.255", AddressClass::Private),
            ("172.15.255.255", AddressClass::Global),
            ("172.32.0.0", AddressClass::Global),
            ("192.168.1.1", AddressClass::Private),
            ("100.64.0.1", AddressClass::SharedCgnat),
            ("100.127.255.255", AddressClass::SharedCgnat),
            ("100.128.0.0", AddressClass::Global),
            ("169.254.169.254", AddressClass::LinkLocal),
            ("224.0.0.1", AddressClass::Multicast),
            ("239.255.255.250", AddressClass::Multicast),
            ("255.255.255.255", AddressClass::Multicast),
            ("240.0.0.1", AddressClass::Reserved),
            ("192.0.2.1", AddressClass::Reserved),
            ("198.51.100.7", AddressClass::Reserved),
            ("203.0.113.9", AddressClass::Reserved),
            ("198.18.0.1", AddressClass::Reserved),
            ("192.0.0.8", AddressClass::Reserved),
            ("8.8.8.8", AddressClass::Global),
            ("93.184.216.34", AddressClass::Global),
        ];
        for (ip, want) in table {
            assert_eq!(c(ip), want, "{ip}");
        }
    }

    #[test]
    fn ipv6_ranges() {
        let table = [
            ("::", AddressClass::Unspecified),
            ("::1", AddressClass::Loopback),
            ("fc00::1", AddressClass::Private),
            ("fd12:3456::1", AddressClass::Private),
            ("fe80::1", AddressClass::LinkLocal),
            ("febf::1", AddressClass::LinkLocal),
            ("fec0::1", AddressClass::Private),
            ("ff02::1", AddressClass::Multicast),
            ("ff05::2", AddressClass::Multicast),
            ("2001:db8::1", AddressClass::Reserved),
            ("2001:0:4136:e378::1", AddressClass::Reserved),
            ("100::1", AddressClass::Reserved),
            ("3fff::1", AddressClass::Global),
            ("2a01:4f8::1", AddressClass::Global),
            ("2606:4700:4700::1111", AddressClass::Global),
            ("4000::1", AddressClass::Reserved),
        ];
        for (ip, want) in table {
            assert_eq!(c(ip), want, "{ip}");
        }
    }

    #[test]
    fn embedded_ipv4_is_judged_by_its_ipv4() {
        assert_eq!(c("::ffff:127.0.0.1"), AddressClass::Loopback);
        assert_eq!(c("::ffff:10.1.2.3"), AddressClass::Private);
        assert_eq!(c("::ffff:169.254.169.254"), AddressClass::LinkLocal);
        assert_eq!(c("::ffff:8.8.8.8"), AddressClass::Global);
        assert_eq!(c("::127.0.0.1"), AddressClass::Loopback);
        assert_eq!(c("64:ff9b::a00:1"), AddressClass::Private);
        assert_eq!(c("64:ff9b::808:808"), AddressClass::Global);
        assert_eq!(c("2002:7f00:1::1"), AddressClass::Loopback);
        assert_eq!(c("2002:c0a8:101::1"), AddressClass::Private);
    }

    #[test]
    fn strict_policy_blocks_everything_but_global() {
        let p = AddressPolicy::STRICT;
        for ip in [
            "127.0.0.1",
            "::1",
            "10.0.0.1",
            "192.168.0.1",
            "172.20.0.1",
            "100.64.1.1",
            "169.254.1.1",
            "fe80::1",
            "fd00::1",
            "224.0.0.1",
            "ff02::1",
            "0.0.0.0",
            "::",
            "::ffff:127.0.0.1",
            "240.0.0.1",
        ] {
            assert!(!p.permits(ip.parse().unwrap()), "{ip} must be blocked");
        }
        assert!(p.permits("8.8.8.8".parse().unwrap()));
        assert!(p.permits("2a01:4f8::1".parse().unwrap()));
    }

    #[test]
    fn allow_private_opens_unicast_private_space_only() {
        let p = AddressPolicy::ALLOW_PRIVATE;
        for ip in ["127.0.3.17", "::1", "10.0.0.1", "fd00::1", "169.254.1.1"] {
            assert!(p.permits(ip.parse().unwrap()), "{ip} must be allowed");
        }
        for ip in ["224.0.0.1", "ff02::1", "0.0.0.0", "::", "255.255.255.255"] {
            assert!(!p.permits(ip.parse().unwrap()), "{ip} must stay blocked");
        }
    }
}
