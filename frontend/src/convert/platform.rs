//! Platform strings (`linux/arm64/v8`) as containerd's `platforms` package reads and
//! writes them.

use cairn_llb::pb::Platform;

use crate::error::{Error, ErrorKind};

/// Parses `os[/arch[/variant]]` and normalises architecture aliases.
pub fn parse_platform(s: &str) -> Result<Platform, Error> {
    let bad = || {
        Error::new(ErrorKind::InvalidValue {
            what: "platform".into(),
            value: s.to_string(),
        })
    };
    let parts: Vec<String> = s.split('/').map(|p| p.trim().to_lowercase()).collect();
    if parts.iter().any(String::is_empty) || parts.len() > 3 {
        return Err(bad());
    }
    let mut p = Platform::default();
    match parts.as_slice() {
        [os] if is_os(os) => {
            p.os = os.clone();
            let host = Platform::host();
            p.architecture = host.architecture;
            p.variant = host.variant;
        }
        [arch] => {
            p.os = "linux".into();
            p.architecture = arch.clone();
        }
        [os, arch] => {
            p.os = os.clone();
            p.architecture = arch.clone();
        }
        [os, arch, variant] => {
            p.os = os.clone();
            p.architecture = arch.clone();
            p.variant = variant.clone();
        }
        _ => return Err(bad()),
    }
    normalize(&mut p);
    Ok(p)
}

fn is_os(s: &str) -> bool {
    matches!(
        s,
        "linux"
            | "windows"
            | "darwin"
            | "freebsd"
            | "netbsd"
            | "openbsd"
            | "solaris"
            | "illumos"
            | "aix"
    )
}

fn normalize(p: &mut Platform) {
    let variant = std::mem::take(&mut p.variant);
    let (arch, variant) = match p.architecture.as_str() {
        "x86_64" | "x86-64" | "amd64" => (
            "amd64",
            if variant == "v1" {
                String::new()
            } else {
                variant
            },
        ),
        "i386" | "386" => ("386", String::new()),
        "aarch64" | "arm64" => (
            "arm64",
            if variant == "8" || variant == "v8" {
                String::new()
            } else {
                variant
            },
        ),
        "armhf" => ("arm", "v7".to_string()),
        "armel" => ("arm", "v6".to_string()),
        "arm" => (
            "arm",
            match variant.as_str() {
                "" | "7" => "v7".to_string(),
                "5" | "6" | "8" => format!("v{variant}"),
                _ => variant,
            },
        ),
        other => (other, variant),
    };
    p.architecture = arch.to_string();
    p.variant = variant;
}

/// `os/arch[/variant]`.
pub fn format_platform(p: &Platform) -> String {
    let mut s = format!("{}/{}", p.os, p.architecture);
    if !p.variant.is_empty() {
        s.push('/');
        s.push_str(&p.variant);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_format() {
        assert_eq!(
            format_platform(&parse_platform("linux/amd64").expect("ok")),
            "linux/amd64"
        );
        assert_eq!(
            format_platform(&parse_platform("linux/x86_64").expect("ok")),
            "linux/amd64"
        );
        assert_eq!(
            format_platform(&parse_platform("linux/arm64/v8").expect("ok")),
            "linux/arm64"
        );
        assert_eq!(
            format_platform(&parse_platform("linux/arm").expect("ok")),
            "linux/arm/v7"
        );
        assert_eq!(
            format_platform(&parse_platform("linux/arm/v6").expect("ok")),
            "linux/arm/v6"
        );
        assert!(parse_platform("linux//x").is_err());
        assert!(parse_platform("").is_err());
    }
}
