//! The parameters every device plugin shares: the device's address and port, the
//! login and its password. Declared once, with the names, aliases and short options
//! fence-agents give them (`-a ip`/`ipaddr`, `-u ipport`, `-l username`/`login`,
//! `-p password`/`passwd`), so that no plugin's spelling drifts; each plugin gives
//! the description that fits its device, and adds what its anchor adds (a default
//! port, another alias such as external/ipmi's `userid`).

use crate::schema::{ParamSpec, ParamType};

/// `ip` (`-a`, alias `ipaddr`): the device's address or host name; required.
pub const fn ip(description: &'static str) -> ParamSpec {
    ParamSpec::new("ip", description)
        .aliases(&["ipaddr"])
        .short('a')
        .required()
}

/// `ipport` (`-u`): the device's port, a number.
pub const fn ipport(description: &'static str) -> ParamSpec {
    ParamSpec::new("ipport", description)
        .short('u')
        .ty(ParamType::Integer)
}

/// `username` (`-l`, alias `login`): the name to log in with.
pub const fn username(description: &'static str) -> ParamSpec {
    ParamSpec::new("username", description)
        .aliases(&["login"])
        .short('l')
}

/// `password` (`-p`, alias `passwd`): a secret, with its `_file`, `_script` and
/// `_env` forms.
pub const fn password(description: &'static str) -> ParamSpec {
    ParamSpec::new("password", description)
        .aliases(&["passwd"])
        .short('p')
        .secret()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_parameters_carry_fence_agents_names() {
        let ip = ip("address");
        assert_eq!((ip.name, ip.short, ip.required), ("ip", Some('a'), true));
        assert_eq!(ip.aliases, ["ipaddr"]);
        assert_eq!(ipport("port").short, Some('u'));
        assert_eq!(username("user").aliases, ["login"]);
        let password = password("pw");
        assert!(password.secret);
        assert_eq!(
            (password.short, password.aliases),
            (Some('p'), &["passwd"][..])
        );
    }
}
