//! File capabilities: the text form RPM headers carry (`cap_net_raw=ep`, as `cap_to_text` writes it)
//! turned into the `security.capability` extended attribute the kernel reads (`vfs_cap_data`, revision 2).

/// Capability names in kernel bit order (linux/capability.h); the index is the bit number.
const CAPABILITY_NAMES: [&str; 41] = [
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

/// `VFS_CAP_REVISION_2`: two 32-bit words per set, enough for 64 capabilities.
const VFS_CAP_REVISION_2: u32 = 0x0200_0000;
/// `VFS_CAP_FLAGS_EFFECTIVE`: raise the permitted set into the effective set on exec.
const VFS_CAP_FLAGS_EFFECTIVE: u32 = 0x0000_0001;

/// The name of the extended attribute that holds file capabilities.
pub const CAPABILITY_XATTR: &str = "security.capability";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid file capabilities \"{text}\": {reason}")]
pub struct CapabilityError {
    pub text: String,
    pub reason: String,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct CapabilitySets {
    effective: u64,
    permitted: u64,
    inheritable: u64,
}

/// Parses the text form and returns the `security.capability` value, or `None` when no capability is set.
pub fn capability_xattr(text: &str) -> Result<Option<Vec<u8>>, CapabilityError> {
    let sets = parse(text)?;
    if sets.permitted == 0 && sets.inheritable == 0 {
        return Ok(None);
    }
    let magic = VFS_CAP_REVISION_2 | if sets.effective != 0 { VFS_CAP_FLAGS_EFFECTIVE } else { 0 };
    let mut bytes = Vec::with_capacity(20);
    bytes.extend_from_slice(&magic.to_le_bytes());
    for word in 0..2 {
        let shift = 32 * word;
        bytes.extend_from_slice(&(((sets.permitted >> shift) & 0xffff_ffff) as u32).to_le_bytes());
        bytes.extend_from_slice(&(((sets.inheritable >> shift) & 0xffff_ffff) as u32).to_le_bytes());
    }
    Ok(Some(bytes))
}

fn all_capabilities() -> u64 {
    (1u64 << CAPABILITY_NAMES.len()) - 1
}

fn parse(text: &str) -> Result<CapabilitySets, CapabilityError> {
    let error = |reason: String| CapabilityError { text: text.to_string(), reason };
    let mut sets = CapabilitySets::default();
    for clause in text.split_whitespace() {
        let operator_at = clause
            .find(['=', '+', '-'])
            .ok_or_else(|| error(format!("\"{clause}\" has no operator (=, + or -)")))?;
        let (names, mut rest) = clause.split_at(operator_at);
        let mut mask = 0u64;
        if names.is_empty() || names == "all" {
            mask = all_capabilities();
        } else {
            for name in names.split(',') {
                let bare = name.strip_prefix("cap_").unwrap_or(name).to_ascii_lowercase();
                let bit = CAPABILITY_NAMES
                    .iter()
                    .position(|known| *known == bare)
                    .ok_or_else(|| error(format!("unknown capability \"{name}\"")))?;
                mask |= 1 << bit;
            }
        }
        while let Some(operator) = rest.chars().next() {
            let flags_end = rest[1..].find(['=', '+', '-']).map_or(rest.len(), |index| index + 1);
            let flags = &rest[1..flags_end];
            if operator == '=' {
                sets.effective &= !mask;
                sets.permitted &= !mask;
                sets.inheritable &= !mask;
            }
            for flag in flags.chars() {
                let set = match flag {
                    'e' => &mut sets.effective,
                    'p' => &mut sets.permitted,
                    'i' => &mut sets.inheritable,
                    other => return Err(error(format!("unknown flag '{other}'"))),
                };
                match operator {
                    '-' => *set &= !mask,
                    _ => *set |= mask,
                }
            }
            rest = &rest[flags_end..];
        }
    }
    Ok(sets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_setcap() {
        // `setcap cap_net_raw+ep FILE` writes exactly these bytes (checked with getfattr).
        let bytes = capability_xattr("cap_net_raw=ep").unwrap().unwrap();
        assert_eq!(bytes, [1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn parses_the_text_forms() {
        let cases: &[(&str, Option<CapabilitySets>)] = &[
            ("", None),
            (
                "cap_net_bind_service,cap_net_raw+ep",
                Some(CapabilitySets {
                    effective: (1 << 10) | (1 << 13),
                    permitted: (1 << 10) | (1 << 13),
                    inheritable: 0,
                }),
            ),
            (
                "cap_setuid=p cap_setgid+i",
                Some(CapabilitySets { effective: 0, permitted: 1 << 7, inheritable: 1 << 6 }),
            ),
            (
                "=ep cap_sys_admin-e",
                Some(CapabilitySets {
                    effective: all_capabilities() & !(1 << 21),
                    permitted: all_capabilities(),
                    inheritable: 0,
                }),
            ),
            ("cap_bpf=p", Some(CapabilitySets { effective: 0, permitted: 1 << 39, inheritable: 0 })),
        ];
        for (text, expected) in cases {
            let sets = parse(text).unwrap();
            match expected {
                None => assert_eq!(capability_xattr(text).unwrap(), None, "{text}"),
                Some(expected) => assert_eq!(&sets, expected, "{text}"),
            }
        }
    }

    #[test]
    fn rejects_nonsense() {
        for text in ["cap_bogus=ep", "cap_chown", "cap_chown=x"] {
            let error = capability_xattr(text).unwrap_err();
            assert!(error.to_string().contains(text), "{error}");
        }
    }
}
