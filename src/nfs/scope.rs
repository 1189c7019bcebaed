//! Who devenv may export to: the VM's own address, or its host-only subnet, inside the
//! private IPv4 ranges; never every host, a name, a netgroup or a public network. The rule
//! holds for devenv's own lines, for a `mount.export_client` override and for what the exports
//! helper accepts, so it lives apart from the file's grammar.

use std::net::Ipv4Addr;

/// Why a client is outside what devenv may export to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("{client:?} exports to every host: use the VM's address or its host-only subnet")]
    Everyone { client: String },
    #[error(
        "{client:?} is not an IPv4 address or subnet: devenv exports only to the VM's address or its host-only subnet"
    )]
    NotIpv4 { client: String },
    #[error("{client} is not the address of a single host")]
    NotAHost { client: String },
    #[error(
        "{client} is not inside the private ranges 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16: devenv never exports to a public network"
    )]
    Public { client: String },
}

/// The scope rule for devenv's own exports (and for a client override in devenv.toml): a single
/// IPv4 host address (`192.168.39.12`) or a subnet inside a private range (`192.168.64.0/24`,
/// `10.0.0.0/255.0.0.0`) — never `*`, a host name, a netgroup or a public network.
pub fn check_client_scope(client: &str) -> Result<(), ScopeError> {
    let everyone = || ScopeError::Everyone {
        client: client.to_string(),
    };
    let not_ipv4 = || ScopeError::NotIpv4 {
        client: client.to_string(),
    };
    if client.is_empty() || client == "*" {
        return Err(everyone());
    }
    let (address, prefix) = match client.split_once('/') {
        None => (client.parse::<Ipv4Addr>().map_err(|_| not_ipv4())?, 32),
        Some((address, mask)) => {
            let address = address.parse::<Ipv4Addr>().map_err(|_| not_ipv4())?;
            let prefix = if mask.contains('.') {
                let mask = u32::from(mask.parse::<Ipv4Addr>().map_err(|_| not_ipv4())?);
                if mask.leading_ones() + mask.trailing_zeros() != 32 {
                    return Err(not_ipv4());
                }
                mask.leading_ones()
            } else if !mask.is_empty()
                && mask.len() <= 2
                && mask.bytes().all(|b| b.is_ascii_digit())
            {
                mask.parse::<u32>().map_err(|_| not_ipv4())?
            } else {
                return Err(not_ipv4());
            };
            if prefix > 32 {
                return Err(not_ipv4());
            }
            (address, prefix)
        }
    };
    if prefix == 0 {
        return Err(everyone());
    }
    if prefix == 32
        && (address.is_unspecified() || address.is_broadcast() || address.is_multicast())
    {
        return Err(ScopeError::NotAHost {
            client: client.to_string(),
        });
    }
    // A single host must be private too: a VM on a host-only network never has a public address.
    let network = u32::from(address) & (u32::MAX << (32 - prefix));
    let private = [
        (Ipv4Addr::new(10, 0, 0, 0), 8),
        (Ipv4Addr::new(172, 16, 0, 0), 12),
        (Ipv4Addr::new(192, 168, 0, 0), 16),
    ];
    let inside = private.iter().any(|&(range, bits)| {
        prefix >= bits && network & (u32::MAX << (32 - bits)) == u32::from(range)
    });
    if inside {
        Ok(())
    } else {
        Err(ScopeError::Public {
            client: client.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scope_rule_accepts_a_private_host_or_subnet() {
        for ok in [
            "192.168.39.12",
            "192.168.64.0/24",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "172.31.255.0/24",
            "10.1.2.3/255.255.0.0",
            "192.168.0.0/16",
            "192.168.1.7/32",
        ] {
            assert_eq!(check_client_scope(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn the_scope_rule_rejects_wildcards_names_and_public_or_wide_networks() {
        for (bad, kind) in [
            ("*", "everyone"),
            ("", "everyone"),
            ("0.0.0.0/0", "everyone"),
            ("*.example.com", "ipv4"),
            ("example.com", "ipv4"),
            ("@group", "ipv4"),
            ("::1", "ipv4"),
            ("10.0.0.1/33", "ipv4"),
            ("10.0.0.1/255.0.255.0", "ipv4"),
            ("010.0.0.1", "ipv4"),
            ("8.8.8.0/24", "public"),
            ("8.8.8.8", "public"),
            ("10.0.0.0/7", "public"),
            ("172.32.0.0/16", "public"),
            ("172.16.0.0/11", "public"),
            ("0.0.0.0", "host"),
            ("255.255.255.255", "host"),
            ("224.0.0.1", "host"),
        ] {
            let err = check_client_scope(bad).unwrap_err();
            let matches = match kind {
                "everyone" => matches!(err, ScopeError::Everyone { .. }),
                "ipv4" => matches!(err, ScopeError::NotIpv4 { .. }),
                "public" => matches!(err, ScopeError::Public { .. }),
                _ => matches!(err, ScopeError::NotAHost { .. }),
            };
            assert!(matches, "{bad}: {err}");
        }
    }
}
