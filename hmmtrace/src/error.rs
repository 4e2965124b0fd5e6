//! The errors that decide how the process ends, typed so that `main` finds them anywhere in an
//! error's chain: [`BadInput`] (exit 2), [`NoPrivilege`] (exit 3). Everything else is a
//! failure (exit 1). Both keep the whole chain of what went wrong for the message.

use std::fmt;

/// Exit code for a failure that is nobody's input.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for bad input: a bad file or argument.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code for "not privileged enough to trace the kernel".
pub const EXIT_NO_PRIVILEGE: u8 = 3;

/// The user's input is wrong (a bad file, a bad argument). Wraps the error that says how,
/// keeping its chain.
#[derive(Debug)]
pub struct BadInput(anyhow::Error);

/// Marks `e` as bad input.
pub fn bad_input(e: impl Into<anyhow::Error>) -> anyhow::Error {
    anyhow::Error::new(BadInput(e.into()))
}

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The first message only; the rest of the chain follows as the source.
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for BadInput {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let inner: &(dyn std::error::Error + 'static) = self.0.as_ref();
        inner.source()
    }
}

/// The process lacks a privilege the kernel asked for while loading or attaching (EPERM or
/// EACCES, wherever it came).
#[derive(Debug)]
pub struct NoPrivilege {
    /// What was being done: "loading the eBPF programs", "reading tracefs", ...
    pub doing: String,
    /// The capabilities the process lacks among those that would allow it (none when it has
    /// them all and the kernel still refused, e.g. a lockdown or an LSM).
    pub missing: Vec<&'static str>,
    /// What the kernel said, with its whole chain.
    pub source: anyhow::Error,
}

impl fmt::Display for NoPrivilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not privileged enough for {}: ", self.doing)?;
        if self.missing.is_empty() {
            write!(
                f,
                "the kernel refused although this process has the capabilities it needs \
                 (a lockdown or security module?)"
            )
        } else {
            write!(
                f,
                "this process lacks {} (run as root, or give hmmtrace {}: e.g. \
                 `sudo setcap cap_bpf,cap_perfmon,cap_dac_read_search+ep hmmtrace`)",
                self.missing.join(" and "),
                if self.missing.len() == 1 {
                    "it"
                } else {
                    "them"
                }
            )
        }
    }
}

impl std::error::Error for NoPrivilege {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

/// Whether an OS error is a refusal for lack of privilege.
pub fn is_privilege_errno(errno: i32) -> bool {
    errno == libc::EPERM || errno == libc::EACCES
}

/// The errno of the first `io::Error` in `e`'s chain that is a privilege refusal.
pub fn privilege_refusal(e: &anyhow::Error) -> Option<std::io::Error> {
    e.chain().find_map(|c| {
        let io = c.downcast_ref::<std::io::Error>()?;
        let n = io.raw_os_error()?;
        is_privilege_errno(n).then(|| std::io::Error::from_raw_os_error(n))
    })
}

/// The exit code `e` calls for.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    for c in e.chain() {
        if c.is::<NoPrivilege>() {
            return EXIT_NO_PRIVILEGE;
        }
        if c.is::<BadInput>() {
            return EXIT_BAD_INPUT;
        }
    }
    EXIT_FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_keeps_the_chain_and_is_found_under_context() {
        let inner = anyhow::anyhow!("line 3: unknown op").context("scenario x.toml");
        let e = bad_input(inner).context("cannot start the demo");
        assert_eq!(exit_code(&e), EXIT_BAD_INPUT);
        assert_eq!(
            format!("{e:#}"),
            "cannot start the demo: scenario x.toml: line 3: unknown op"
        );
    }

    #[test]
    fn no_privilege_names_what_is_missing() {
        let e: anyhow::Error = NoPrivilege {
            doing: "loading the eBPF programs".into(),
            missing: vec!["CAP_PERFMON"],
            source: std::io::Error::from_raw_os_error(libc::EPERM).into(),
        }
        .into();
        assert_eq!(exit_code(&e), EXIT_NO_PRIVILEGE);
        let text = format!("{e:#}");
        assert!(text.contains("lacks CAP_PERFMON"), "{text}");
        assert!(text.contains("Operation not permitted"), "{text}");
        assert_eq!(exit_code(&anyhow::anyhow!("disk full")), EXIT_FAILURE);
    }

    #[test]
    fn a_privilege_errno_is_found_anywhere_in_the_chain() {
        let e = anyhow::Error::new(std::io::Error::from_raw_os_error(libc::EACCES))
            .context("cannot attach");
        assert_eq!(
            privilege_refusal(&e).and_then(|io| io.raw_os_error()),
            Some(libc::EACCES)
        );
        let e = anyhow::Error::new(std::io::Error::from_raw_os_error(libc::ENOENT));
        assert!(privilege_refusal(&e).is_none());
    }
}
