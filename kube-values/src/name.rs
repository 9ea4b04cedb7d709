//! Object names by Kubernetes' rules (RFC 1123 labels and subdomains).

/// A DNS-1123 label: lowercase letters, digits and '-', at most 63, starting and ending with an
/// alphanumeric. Namespace and Service names are labels.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1123 subdomain: dot-separated labels, at most 253. Most object names are subdomains.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_subdomains() {
        assert!(is_dns_label("nghean-stttt") && is_dns_label("a1"));
        for bad in ["", "-a", "a-", "A", "a.b", "a_b", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad:?}");
        }
        assert!(is_dns_subdomain("widgets.example.com"));
        assert!(!is_dns_subdomain("a..b") && !is_dns_subdomain("Example.com"));
    }
}
