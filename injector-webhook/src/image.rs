//! Image references (`[registry/]repository[:tag][@digest]`) and the part of an image config
//! the injector needs: the entrypoint and command the runtime would have used.

use std::fmt;

/// Docker Hub's registry host, used for references with no registry part.
pub const DOCKER_HUB: &str = "registry-1.docker.io";

/// A reference that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("image reference {0:?} is not of the form [registry/]repository[:tag][@digest]")]
pub struct BadReference(pub String);

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// `host[:port]`.
    pub registry: String,
    /// `library/debian`, `d9j1j8i6/oai-smf`.
    pub repository: String,
    /// Tag or digest to ask the registry for.
    pub reference: String,
}

impl ImageRef {
    pub fn parse(text: &str) -> Result<Self, BadReference> {
        let bad = || BadReference(text.to_string());
        let text = text.trim();
        if text.is_empty() || text.contains(char::is_whitespace) {
            return Err(bad());
        }
        let (name, digest) = match text.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (text, None),
        };
        // A tag is after the last ':' that follows the last '/', so `host:5000/x` has none.
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
            None => (name, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        let valid_repo = !repository.is_empty()
            && repository.split('/').all(|c| {
                !c.is_empty()
                    && c.chars().all(|ch| {
                        ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch)
                    })
            });
        if !valid_repo || registry.is_empty() {
            return Err(bad());
        }
        let reference = match (digest, tag) {
            (Some(d), _) if d.contains(':') => d.to_string(),
            (Some(_), _) => return Err(bad()),
            (None, Some(t)) if !t.is_empty() => t.to_string(),
            (None, Some(_)) => return Err(bad()),
            (None, None) => "latest".to_string(),
        };
        Ok(ImageRef {
            registry,
            repository,
            reference,
        })
    }

    /// Host part of the registry, without the port.
    pub fn host(&self) -> &str {
        if let Some(rest) = self.registry.strip_prefix('[') {
            return rest.split(']').next().unwrap_or(rest);
        }
        self.registry.split(':').next().unwrap_or(&self.registry)
    }

    /// Registries on loopback are spoken to over plain HTTP (a local development registry).
    pub fn is_loopback(&self) -> bool {
        let h = self.host();
        h == "localhost"
            || h.parse::<std::net::IpAddr>()
                .map(|ip| ip.is_loopback())
                .unwrap_or(false)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sep = if self.reference.contains(':') {
            '@'
        } else {
            ':'
        };
        write!(
            f,
            "{}/{}{}{}",
            self.registry, self.repository, sep, self.reference
        )
    }
}

/// What the runtime would run for an image when the pod sets neither command nor args.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageConfig {
    /// `config.Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `config.Cmd`.
    pub cmd: Vec<String>,
    /// Digest of the image manifest that was read, for the record.
    pub digest: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_like_the_runtime_reads_them() {
        let r = ImageRef::parse("debian").unwrap();
        assert_eq!(
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.reference.as_str()
            ),
            (DOCKER_HUB, "library/debian", "latest")
        );
        let r = ImageRef::parse("127.0.0.1:5000/nf/smf:v1").unwrap();
        assert_eq!(
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.reference.as_str()
            ),
            ("127.0.0.1:5000", "nf/smf", "v1")
        );
        assert!(r.is_loopback());
        let r = ImageRef::parse("public.ecr.aws/d9j1j8i6/oai-smf:latest").unwrap();
        assert_eq!(r.registry, "public.ecr.aws");
        assert!(!r.is_loopback());
        let r = ImageRef::parse("localhost:5000/x@sha256:abcd").unwrap();
        assert_eq!(r.reference, "sha256:abcd");
        assert_eq!(r.to_string(), "localhost:5000/x@sha256:abcd");
        for bad in ["", "UPPER/case", "x:", "a b", "x@nodigest"] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
    }
}
