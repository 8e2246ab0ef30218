//! [`IpmiSwitch`]: the `PowerSwitch` for a BMC, and the `ipmi` plugin's parameter
//! [`SCHEMA`]. One session per call (open, command, close): simple and correct;
//! the fence algorithm in core polls status and decides what "fenced" means.
//!
//! RMCP+ unless IPMI 1.5 is asked for explicitly (`lanplus=0`, `interface=lan`;
//! ipmi.md §7): fence_ipmilan's default is 1.5, but a BMC that speaks 2.0 switches
//! the same machine either way, and RMCP+ is the safer session.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use fencekit_core::device_params;
use fencekit_core::schema::{ParamSpec, ParamType, PluginKind};
use fencekit_core::{
    DeviceCommand, DeviceError, Instant, Params, Plug, PlugInfo, PowerState, PowerSwitch, Schema,
    SwitchTo,
};
use tokio::sync::Mutex;

use crate::driver::{Driver, KeptSession};
use crate::error::IpmiError;
use crate::message::{ChassisControl, Privilege};
use crate::session::client::{Command, Reply, SessionConfig, Workarounds};
use crate::suite::offer;
use crate::v15::AuthType;

const PARAMS: &[ParamSpec] = &[
    device_params::ip("IP address or host name of the BMC"),
    // No `udpport`: no anchor knows the name (fence_ipmilan ignores it and uses
    // 623), so a stale one must not move the command to another BMC's port.
    device_params::ipport("UDP port of the BMC's RMCP+ service").default("623"),
    // external/ipmi's `userid` too.
    device_params::username("BMC user name (at most 16 bytes)").aliases(&["login", "userid"]),
    device_params::password("BMC password (at most 20 bytes)"),
    ParamSpec::new(
        "privlvl",
        "privilege level to ask for; with a `+` (ipmitool's -L X+), the BMC looks the user up \
         by name and privilege instead of by name only",
    )
    .short('L')
    .ty(ParamType::Select(&[
        "callback",
        "user",
        "operator",
        "administrator",
        "callback+",
        "user+",
        "operator+",
        "administrator+",
    ]))
    .default("operator"),
    ParamSpec::new(
        "allow_null_username",
        "log in as the BMC's null user (no user name, only its password), as fence_ipmilan \
         does without a login; refused unless set",
    )
    .ty(ParamType::Boolean)
    .default("false"),
    ParamSpec::new(
        "cipher",
        "pin one cipher suite (default: 17, then 3); weak suites only when pinned",
    )
    .short('C'),
    ParamSpec::new(
        "suite_memory_dir",
        "Where the cipher suite each BMC last accepted is remembered, so that the next run \
         offers it first (a BMC without suite 17 costs the fallback once); empty: no memory. \
         Only with the default offer: a pinned cipher is always what is offered",
    )
    .default(DEFAULT_SUITE_MEMORY),
    ParamSpec::new(
        "hexadecimal_kg",
        "the BMC key K_g, in hexadecimal (two-key login)",
    )
    .secret(),
    ParamSpec::new(
        "lanplus",
        "IPMI v2.0 RMCP+ (the default, also when unset: fence_ipmilan's default is IPMI 1.5, \
         but a BMC that speaks 2.0 is switched the same and RMCP+ is safer); lanplus=0 speaks \
         IPMI 1.5 (weak: MD5 unless `auth` says otherwise)",
    )
    .short('P')
    .ty(ParamType::Boolean),
    ParamSpec::new(
        "auth",
        "IPMI 1.5 authentication type (none, md5, password; without it, md5 only); given without lanplus or interface, IPMI 1.5 is spoken (fence_ipmilan's default); an RMCP+ \
         session authenticates with its cipher suite instead, as ipmitool -I lanplus does. \
         password sends the password in clear; none checks no password at all",
    )
    .short('A')
    .ty(ParamType::Select(&["none", "md5", "password"])),
    ParamSpec::new(
        "target",
        "IPMI bridging (fence_ipmilan's --target): not supported, and refused when given \
         (switching the chassis manager instead of the blade would be the wrong machine)",
    ),
    ParamSpec::new(
        "port_as_ip",
        "the plug (port) is the BMC's address, as fence_ipmilan's --port-as-ip",
    )
    .ty(ParamType::Boolean),
    ParamSpec::new(
        "ipmitool_path",
        "fence_ipmilan's path to ipmitool: fencekit runs no ipmitool, so it is not used",
    ),
    ParamSpec::new(
        "ipmitool_timeout",
        "fence_ipmilan's time for one ipmitool run: not used (timeout bounds the whole operation)",
    ),
    ParamSpec::new(
        "use_sudo",
        "fence_ipmilan's sudo for ipmitool: not used (fencekit runs no ipmitool)",
    )
    .aliases(&["sudo"])
    .ty(ParamType::Boolean),
    ParamSpec::new(
        "sudo_path",
        "fence_ipmilan's path to sudo: not used (fencekit runs no ipmitool)",
    ),
    ParamSpec::new(
        "interface",
        "IPMI interface (external/ipmi's name): lanplus (IPMI v2.0 RMCP+; what is spoken when \
         neither this, lanplus nor auth asks for IPMI 1.5, although external/ipmi's own \
         default is lan), or lan (IPMI 1.5, MD5 unless `auth` says otherwise)",
    )
    .ty(ParamType::Select(&["lan", "lanplus"])),
    ParamSpec::new(
        "allow_insecure_cipher",
        "allow a pinned cipher suite without authentication or integrity (0, 1, 6, 15)",
    )
    .ty(ParamType::Boolean)
    .default("0"),
    ParamSpec::new(
        "workarounds",
        "comma-separated BMC quirk workarounds, named after ipmipower's -W: opensesspriv (the \
         level in Open Session, even with privzero), privzero (0 in Open Session), intel20 (name \
         padded to 16, RAKP 3 without name-only lookup, HMAC-MD5 password cut to 16, RAKP 4 \
         check value by the integrity algorithm), supermicro20 (RAKP 2 auth code one byte too \
         long), sun20 (the same for HMAC-SHA1, and opensesspriv), integritycheckvalue (suite 0 \
         only: RAKP 4 carries a check value that cannot be checked), nochecksumcheck, idzero. \
         None of them skips a check of the BMC's RAKP 2 proof or RAKP 4 check value",
    ),
    ParamSpec::new(
        "retransmit_interval",
        "seconds before a lost datagram is sent again",
    )
    .ty(ParamType::Seconds)
    .default("0.5"),
];

/// The time the first addresses of a name with several get, each, when the
/// deadline allows: enough for Open Session's retransmissions, and for a suite
/// fallback, on a BMC that answers.
const PER_ADDRESS_MIN: Duration = Duration::from_millis(1500);
const PER_ADDRESS_MAX: Duration = Duration::from_secs(5);

/// How long before the caller's deadline a session gives up, to report its reason.
const ANSWER_MARGIN: Duration = Duration::from_millis(50);

/// The `ipmi` plugin's schema.
pub const SCHEMA: Schema = Schema {
    plugin: "ipmi",
    kind: PluginKind::Power,
    summary: "IPMI v2.0 BMC over RMCP+ (lanplus), native; IPMI 1.5 (lan) when asked",
    description: "Switches a machine through its BMC with IPMI v2.0 RMCP+ (lanplus), \
                  without ipmitool. Cipher suite 17, then 3, unless one is pinned; \
                  wrong passwords fail at once without retries. IPMI 1.5 only when \
                  lanplus=0 or interface=lan asks for it (MD5 unless auth says otherwise).",
    url: "https://www.intel.com/content/www/us/en/products/docs/servers/ipmi/ipmi-second-gen-interface-spec-v2-rev1-1.html",
    multi_plug: false,
    plug_optional: false,
    commands: &[
        DeviceCommand::Cycle,
        DeviceCommand::Reset,
        DeviceCommand::Diag,
        DeviceCommand::SoftOff,
    ],
    params: PARAMS,
    open: false,
};

/// Where each BMC's accepted cipher suite is remembered by default (root's, cleared
/// at boot).
const DEFAULT_SUITE_MEMORY: &str = "/run/fencekit/ipmi";

/// The remembered suite of one BMC: a file in the memory directory.
#[derive(Debug)]
struct SuiteMemory {
    file: std::path::PathBuf,
    /// What the file says (read when the switch was built, then as written).
    remembered: std::sync::Mutex<Option<u8>>,
}

impl SuiteMemory {
    /// The memory of `host:port` in `dir` (the host name sanitised for a file name).
    fn open(dir: &std::path::Path, host: &str, port: u16) -> SuiteMemory {
        let name: String = host
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':') {
                    c
                } else {
                    '_'
                }
            })
            .take(200)
            .collect();
        let file = dir.join(format!("{name}_{port}.suite"));
        let remembered = fencekit_core::files::read_text_bounded(&file, 64)
            .ok()
            .and_then(|t| t.trim().parse::<u8>().ok());
        SuiteMemory {
            file,
            remembered: std::sync::Mutex::new(remembered),
        }
    }

    fn remembered(&self) -> Option<u8> {
        *self.remembered.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers `suite`, if it is news. A memory that cannot be written is only
    /// logged: it saves time, never decides anything.
    fn remember(&self, suite: u8) {
        {
            let mut remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
            if *remembered == Some(suite) {
                return;
            }
            *remembered = Some(suite);
        }
        let written = (|| {
            let dir = self.file.parent().unwrap_or(std::path::Path::new("."));
            std::fs::create_dir_all(dir)?;
            let tmp = self
                .file
                .with_extension(format!("tmp.{}", std::process::id()));
            // A new file only (never through a link planted under that name).
            let mut file = fencekit_core::files::open_regular(
                &tmp,
                std::fs::OpenOptions::new().create_new(true).write(true),
            )?;
            let renamed = std::io::Write::write_all(&mut file, format!("{suite}\n").as_bytes())
                .and_then(|()| std::fs::rename(&tmp, &self.file));
            if renamed.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            renamed
        })();
        if let Err(e) = written {
            tracing::debug!(file = %self.file.display(), error = %e, "cannot remember the cipher suite");
        }
    }
}

/// A BMC as a power switch with one plug, [`Plug::Chassis`].
pub struct IpmiSwitch {
    host: String,
    port: u16,
    config: SessionConfig,
    /// Shared driver, or one made on first use in the caller's runtime for the
    /// address family of the BMC's address (`None`: given, used for any address).
    driver: Mutex<Option<(Driver, Option<bool>)>>,
    /// The power state read by Get Chassis Status in the same session as the last
    /// on/off command, after the BMC accepted it; the next status read takes it, so a
    /// BMC that switches at once is confirmed in one session (the fence algorithm
    /// still decides; this is a real read, taken after the command was accepted).
    observed: std::sync::Mutex<Option<(PowerState, Instant)>>,
    /// The session of the last on/off/cycle command, kept open so that the status
    /// reads confirming it run in it: one fence, one session, where the BMC keeps
    /// it. Closed by [`PowerSwitch::close`] (or by the driver when idle).
    kept: std::sync::Mutex<Option<(Driver, KeptSession)>>,
    /// The suite this BMC accepted last time, with the default offer.
    memory: Option<SuiteMemory>,
    /// The address the BMC answered at: every later command and read of this
    /// switch goes there only, so that a state read cannot come from another
    /// address of the name (another BMC, or the same name resolved anew).
    answered: std::sync::Mutex<Option<SocketAddr>>,
}

/// How long a state read with a command may stand in for the next status call.
const OBSERVED_FRESH: Duration = Duration::from_millis(500);

/// How long closing a kept session may take before the next command's session.
const KEPT_CLOSE: Duration = Duration::from_millis(500);

/// How many retransmission intervals a read in the kept session may take before
/// the read goes to a session of its own.
const KEPT_READ_SENDS: u32 = 3;

impl std::fmt::Debug for IpmiSwitch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpmiSwitch")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The first address of each family among `addrs` (resolver order kept), and
/// whether there were others. A BMC has one address per family; a second IPv4
/// address of its name may be another BMC, which ipmitool never tries either.
fn first_of_each_family(addrs: Vec<SocketAddr>) -> (Vec<SocketAddr>, bool) {
    // An IPv6 address that carries an IPv4 one reaches an IPv4 host: of the IPv4
    // family here.
    let v6 = fencekit_core::lookup::reaches_ipv6;
    let mut first: Vec<SocketAddr> = Vec::with_capacity(2);
    let mut others = false;
    for addr in addrs {
        match first.iter().find(|f| v6(f) == v6(&addr)) {
            None => first.push(addr),
            // The same address twice (one per socket type) is one address.
            Some(kept) => others |= *kept != addr,
        }
    }
    (first, others)
}

fn config_error(error: IpmiError) -> DeviceError {
    match error {
        IpmiError::Config(text) => DeviceError::Failed(text),
        other => other.into(),
    }
}

/// IPMI 1.5 and its auth type (`true`: given explicitly) when the parameters ask
/// for it, `None` for RMCP+. Only `lanplus=0` / `lanplus=false` or `interface=lan`
/// ask (ipmi.md §7). RMCP+ parameters that cannot apply to 1.5: K_g is refused
/// (a two-key login the user relies on would silently not happen); a pinned
/// cipher and the name-and-privilege lookup are ignored with a warning, as
/// `ipmitool -I lan` ignores `-C` (neither changes which machine is switched).
fn protocol_from(
    params: &Params,
    kg: bool,
    pinned: bool,
    by_privilege: bool,
) -> Result<Option<(AuthType, bool)>, DeviceError> {
    let lanplus = params.boolean("lanplus");
    let interface = params
        .text("interface")
        .map(str::trim)
        .filter(|i| !i.is_empty());
    let interface_lan = interface == Some("lan");
    if (lanplus == Some(true) && interface_lan)
        || (lanplus == Some(false) && interface == Some("lanplus"))
    {
        return Err(DeviceError::Failed(
            "lanplus and interface contradict each other (RMCP+ or IPMI 1.5?): refusing \
             rather than choosing one"
                .into(),
        ));
    }
    if !wants_one_five(params) {
        return Ok(None);
    }
    let (auth, explicit) = match params.text("auth").map(str::trim) {
        None | Some("") => (AuthType::Md5, false),
        Some(text) => match text.to_ascii_lowercase().as_str() {
            "md5" => (AuthType::Md5, true),
            "password" | "straight" => (AuthType::Password, true),
            "none" => (AuthType::None, true),
            other => {
                return Err(DeviceError::Failed(format!(
                    "auth `{other}` is not an IPMI 1.5 authentication type fencekit speaks \
                     (md5, password, none)"
                )))
            }
        },
    };
    if kg {
        return Err(DeviceError::Failed(
            "hexadecimal_kg (the BMC key of an RMCP+ two-key login) does not exist in IPMI \
             1.5: refusing rather than logging in without it; use lanplus=1"
                .into(),
        ));
    }
    if pinned {
        tracing::warn!("`cipher` applies to RMCP+ only; IPMI 1.5 (lanplus=0) has no cipher suites");
    }
    if by_privilege {
        tracing::warn!(
            "privlvl `+` (lookup by name and privilege) applies to RMCP+ only; IPMI 1.5 looks \
             the user up by name"
        );
    }
    if auth != AuthType::Md5 {
        tracing::warn!(
            auth = auth.as_str(),
            "IPMI 1.5 with a weaker authentication type than MD5, as configured"
        );
    }
    Ok(Some((auth, explicit)))
}

/// Whether the parameters ask for IPMI 1.5: `lanplus=0`, `interface=lan`, or an
/// `auth` with neither `lanplus` nor `interface` given — `auth` is IPMI 1.5's
/// alone, and fence_ipmilan, whose default is IPMI 1.5, is configured so.
fn wants_one_five(params: &Params) -> bool {
    let lanplus = params.boolean("lanplus");
    let interface = params
        .text("interface")
        .map(str::trim)
        .filter(|i| !i.is_empty());
    let auth = params.text("auth").is_some_and(|a| !a.trim().is_empty());
    lanplus == Some(false)
        || interface == Some("lan")
        || (auth && lanplus.is_none() && interface.is_none())
}

/// IPMI 1.5 with `auth=none`: a login no password takes part in.
fn one_five_without_authentication(params: &Params) -> bool {
    wants_one_five(params)
        && params
            .text("auth")
            .is_some_and(|a| a.trim().eq_ignore_ascii_case("none"))
}

fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim().trim_start_matches("0x");
    if text.len() % 2 != 0 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

impl IpmiSwitch {
    /// Builds the switch from parameters validated against [`SCHEMA`].
    pub fn from_params(params: &Params) -> Result<IpmiSwitch, DeviceError> {
        let host = params
            .text("ip")
            .ok_or_else(|| DeviceError::Failed("parameter `ip` is missing".into()))?
            .to_string();
        let port = params.integer("ipport").unwrap_or(623);
        let port = u16::try_from(port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| DeviceError::Failed(format!("ipport {port} is not a UDP port")))?;
        let username = params.text("username").unwrap_or("");
        if username.is_empty() && params.boolean("allow_null_username") != Some(true) {
            // Null user names only when asked for (ipmi.md §7).
            return Err(DeviceError::Failed(
                "parameter `username` is missing: a login as the BMC's null user is refused \
                 unless allow_null_username=1"
                    .into(),
            ));
        }
        // IPMI 1.5 with auth=none proves nothing with a password (fence_ipmilan asks
        // for none there); every other login needs one.
        let password = match params.secret("password").cloned() {
            Some(password) => password,
            None if one_five_without_authentication(params) => fencekit_core::Secret::new(""),
            None => {
                return Err(DeviceError::Failed(
                    "parameter `password` is missing".into(),
                ))
            }
        };
        let privlvl = params.text("privlvl").unwrap_or("operator").trim();
        // ipmitool's `-L X+`: the user looked up by name and privilege.
        let (privlvl, by_privilege) = match privlvl.strip_suffix('+') {
            Some(level) => (level, true),
            None => (privlvl, false),
        };
        let privilege = Privilege::parse(privlvl).ok_or_else(|| {
            DeviceError::Failed("privlvl must be callback, user, operator or administrator".into())
        })?;
        let pinned = match params
            .text("cipher")
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            None => None,
            Some(text) => Some(text.parse::<u8>().map_err(|_| {
                DeviceError::Failed(format!("cipher `{text}` is not a cipher suite number"))
            })?),
        };
        let allow_insecure = params.boolean("allow_insecure_cipher").unwrap_or(false);
        let mut suites = offer(pinned, allow_insecure).map_err(config_error)?;
        let kg = match params.secret("hexadecimal_kg") {
            None => None,
            Some(secret) => Some(zeroize::Zeroizing::new(
                parse_hex(secret.expose()).ok_or_else(|| {
                    DeviceError::Failed("hexadecimal_kg is not hexadecimal".into())
                })?,
            )),
        }
        // An all-zero K_g is what BMCs show when none is set (iDRAC's default), and
        // ipmitool and FreeIPMI take it as none: the session is keyed with the
        // password, as the BMC keys it (IPMI v2.0 §13.31).
        .filter(|kg| kg.iter().any(|b| *b != 0));
        let protocol = protocol_from(params, kg.is_some(), pinned.is_some(), by_privilege)?;
        // With the default offer, the suite the BMC accepted last time goes first (it
        // is one the offer allows anyway; a pinned cipher is never reordered).
        let memory = match params.text("suite_memory_dir").map(str::trim) {
            Some(dir) if pinned.is_none() && !dir.is_empty() && protocol.is_none() => {
                Some(SuiteMemory::open(std::path::Path::new(dir), &host, port))
            }
            _ => None,
        };
        if let Some(at) = memory
            .as_ref()
            .and_then(SuiteMemory::remembered)
            .and_then(|id| suites.iter().position(|s| s.id == id))
        {
            let remembered = suites.remove(at);
            suites.insert(0, remembered);
        }
        if params.boolean("port_as_ip") == Some(true) {
            return Err(DeviceError::Failed(
                "`port_as_ip` (the plug is the BMC's address) is a fence-agent option, where \
                 Pacemaker passes the plug; here, give the address as `ip`"
                    .into(),
            ));
        }
        if params.text("target").is_some_and(|t| !t.trim().is_empty()) {
            return Err(DeviceError::Failed(
                "`target` (IPMI bridging) is not supported: refusing rather than switching \
                 the wrong machine"
                    .into(),
            ));
        }
        let name = format!("{host}:{port}");
        let mut config = SessionConfig::new(
            name,
            username,
            &password,
            kg.as_ref().map(|k| &k[..]),
            privilege,
            suites,
        )
        .map_err(config_error)?;
        config.name_only_lookup = !by_privilege;
        if let Some((auth, explicit)) = protocol {
            config.use_ipmi15(auth, explicit).map_err(config_error)?;
        }
        if let Some(list) = params.text("workarounds") {
            config.workarounds = Workarounds::parse(list).map_err(config_error)?;
        }
        if let Some(interval) = params.seconds("retransmit_interval") {
            config.retransmit_interval = interval.max(Duration::from_millis(50));
        }
        Ok(IpmiSwitch {
            host,
            port,
            config,
            driver: Mutex::new(None),
            observed: std::sync::Mutex::new(None),
            kept: std::sync::Mutex::new(None),
            memory,
            answered: std::sync::Mutex::new(None),
        })
    }

    /// Uses `driver` (one socket shared by many BMCs) instead of one of its own.
    pub fn with_driver(self, driver: Driver) -> IpmiSwitch {
        IpmiSwitch {
            driver: Mutex::new(Some((driver, None))),
            ..self
        }
    }

    fn check_plug(plug: &Plug) -> Result<(), DeviceError> {
        match plug {
            Plug::Chassis => Ok(()),
            other => Err(DeviceError::UnknownPlug {
                plug: other.to_string(),
                known: "chassis (a BMC has one)".into(),
            }),
        }
    }

    /// The driver for `peer`: a socket of the peer's address family (an IPv6 BMC
    /// cannot be reached from an IPv4 socket), on the loopback interface for a
    /// loopback peer.
    async fn driver(&self, peer: SocketAddr) -> Result<Driver, DeviceError> {
        let v6 = peer.is_ipv6();
        let mut slot = self.driver.lock().await;
        if let Some((driver, family)) = slot.as_ref().filter(|(d, _)| d.is_alive()) {
            if family.is_none() || *family == Some(v6) {
                return Ok(driver.clone());
            }
        }
        let local: SocketAddr = match (v6, peer.ip().is_loopback()) {
            (false, true) => SocketAddr::from(([127, 0, 0, 1], 0)),
            (false, false) => SocketAddr::from(([0, 0, 0, 0], 0)),
            (true, true) => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0)),
            (true, false) => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
        };
        let driver = Driver::bind(local)
            .await
            .map_err(|e| DeviceError::Failed(format!("cannot open a UDP socket: {e}")))?;
        *slot = Some((driver.clone(), Some(v6)));
        Ok(driver)
    }

    /// The BMC's addresses by `deadline` (see [`fencekit_core::lookup`]): the one
    /// it answered at before, else the first of each address family the name has.
    async fn peers(&self, deadline: Instant) -> Result<Vec<SocketAddr>, DeviceError> {
        if let Some(answered) = *self.answered.lock().unwrap_or_else(|e| e.into_inner()) {
            return Ok(vec![answered]);
        }
        match fencekit_core::lookup::lookup(&self.host, self.port, deadline).await {
            Ok(addrs) => {
                let (first, others) = first_of_each_family(addrs);
                if others {
                    tracing::warn!(host = %self.config.host, address = ?first,
                        "the BMC's name has several addresses of one family: only the \
                         first is used, as ipmitool does (another may be another BMC)");
                }
                Ok(first)
            }
            Err(e) if e.is_timeout() => Err(DeviceError::TimedOut(e.to_string())),
            Err(e) => Err(DeviceError::Failed(e.to_string())),
        }
    }

    async fn run(
        &self,
        commands: Vec<Command>,
        deadline: Instant,
    ) -> Result<Vec<Reply>, DeviceError> {
        self.run_each(commands, deadline)
            .await?
            .into_iter()
            .map(|r| r.map_err(DeviceError::from))
            .collect()
    }

    /// Runs `commands` in one session; each command's own answer (a refused command
    /// does not stop the ones after it).
    async fn run_each(
        &self,
        commands: Vec<Command>,
        deadline: Instant,
    ) -> Result<Vec<Result<Reply, IpmiError>>, DeviceError> {
        let peers = self.peers(deadline).await?;
        self.run_on(&peers, commands, deadline, false).await
    }

    /// [`IpmiSwitch::run_each`] on the BMC's addresses `peers`, in order.
    /// With `keep`, the session is kept open after the commands for the status
    /// reads that follow ([`IpmiSwitch::kept`]).
    async fn run_on(
        &self,
        peers: &[SocketAddr],
        commands: Vec<Command>,
        deadline: Instant,
        keep: bool,
    ) -> Result<Vec<Result<Reply, IpmiError>>, DeviceError> {
        // End the session a little before the caller's deadline, so that the
        // caller hears *why* (no answer to Open Session, RAKP, in-session) rather
        // than cutting the call off itself at the deadline.
        let session_deadline = deadline
            .checked_sub(ANSWER_MARGIN)
            .filter(|d| *d > Instant::now())
            .unwrap_or(deadline);
        // A name with an address of each family (an AAAA and an A record,
        // `localhost` as ::1 and 127.0.0.1): each is tried in turn, the first with
        // part of the time, and the next only when Open Session got no answer at
        // all, so no command can have reached the BMC and none is ever sent twice.
        // The address that answered is the BMC's for the rest of this switch's life.
        for (i, peer) in peers.iter().enumerate() {
            let left = session_deadline.saturating_duration_since(Instant::now());
            let last = i + 1 == peers.len() || left < PER_ADDRESS_MIN * 2;
            let attempt_deadline = if last {
                session_deadline
            } else {
                Instant::now() + (left / 2).clamp(PER_ADDRESS_MIN, PER_ADDRESS_MAX)
            };
            let driver = self.driver(*peer).await?;
            let replies = if keep {
                let (replies, kept) = driver
                    .run_and_keep(
                        *peer,
                        self.config.clone(),
                        commands.clone(),
                        attempt_deadline,
                    )
                    .await;
                if let Some(kept) = kept {
                    self.keep(driver.clone(), kept);
                }
                replies
            } else {
                driver
                    .run(
                        *peer,
                        self.config.clone(),
                        commands.clone(),
                        attempt_deadline,
                    )
                    .await
            };
            if let (Some(memory), Some(suite)) = (&self.memory, driver.accepted_suite(*peer)) {
                memory.remember(suite);
            }
            let unanswered = matches!(
                replies,
                Err(IpmiError::NoAnswer {
                    phase: crate::error::Phase::OpenSession | crate::error::Phase::AuthCaps,
                    ..
                })
            );
            if !unanswered {
                *self.answered.lock().unwrap_or_else(|e| e.into_inner()) = Some(*peer);
            } else if !last {
                tracing::info!(host = %self.config.host, address = %peer,
                    "no answer to Open Session; trying the next address");
                continue;
            }
            // The BMC answered (or the last address is done): its result.
            return replies.map_err(DeviceError::from);
        }
        Err(DeviceError::Failed(format!("{} has no address", self.host)))
    }

    async fn control(&self, control: ChassisControl, deadline: Instant) -> Result<(), DeviceError> {
        tracing::info!(host = %self.config.host, command = control.as_str(), "chassis control");
        self.run(vec![Command::ChassisControl(control)], deadline)
            .await?;
        Ok(())
    }

    /// Power up, down or cycle, and read the state back in the same session.
    ///
    /// Some BMCs (Dell iDRAC) refuse power down of a machine that is already off,
    /// and power up of one already on, with 0xD5 "not supported in present state".
    /// The state read in the same session, after the refusal, decides: in the state
    /// asked for, the switch stands (the fence algorithm then confirms it with a
    /// read of its own, in a new session); in any other state, or unread, the
    /// refusal is the answer. Nothing is assumed from the code alone.
    async fn switch_and_read(
        &self,
        control: ChassisControl,
        deadline: Instant,
    ) -> Result<(), DeviceError> {
        tracing::info!(host = %self.config.host, command = control.as_str(), "chassis control");
        // The session kept from an earlier command (a reboot's off) ends first.
        PowerSwitch::close(self, (Instant::now() + KEPT_CLOSE).min(deadline)).await;
        let peers = self.peers(deadline).await?;
        let mut replies = self
            .run_on(
                &peers,
                vec![Command::ChassisControl(control), Command::GetChassisStatus],
                deadline,
                true,
            )
            .await?
            .into_iter();
        let answer = replies.next().unwrap_or_else(|| {
            Err(IpmiError::Protocol {
                host: self.config.host.clone(),
                detail: format!("no answer to {}", control.as_str()),
            })
        });
        let read = replies.next().map(|r| match r {
            Ok(Reply::Power(state)) => Ok(state),
            Ok(Reply::Accepted) => Ok(PowerState::Unknown),
            Err(e) => Err(e),
        });
        let state = match answer {
            Ok(_) => read.and_then(Result::ok),
            Err(refusal @ IpmiError::NotInPresentState { .. }) => {
                let wanted = match control {
                    ChassisControl::PowerDown => PowerState::Off,
                    ChassisControl::PowerUp => PowerState::On,
                    _ => return Err(refusal.into()),
                };
                match read {
                    Some(Ok(state)) if state == wanted => {
                        tracing::info!(
                            host = %self.config.host,
                            command = control.as_str(),
                            state = %state,
                            "the BMC refused the command in its present state, and the chassis reads as asked"
                        );
                        // Not kept for the next status read: the fence algorithm
                        // confirms a refused command with a read of its own.
                        None
                    }
                    Some(Ok(state)) => {
                        return Err(DeviceError::Refused(format!(
                            "{refusal}; the chassis reads {state}, not {wanted}"
                        )))
                    }
                    Some(Err(error)) => {
                        return Err(DeviceError::Refused(format!(
                            "{refusal}; the chassis state could not be read after it: {error}"
                        )))
                    }
                    None => return Err(refusal.into()),
                }
            }
            Err(error) => return Err(error.into()),
        };
        if let Ok(mut observed) = self.observed.lock() {
            *observed = state.map(|state| (state, Instant::now()));
        }
        Ok(())
    }

    /// Keeps `session` for the next status reads (the one kept before it was
    /// closed first; should one still be there, the driver closes it when idle).
    fn keep(&self, driver: Driver, session: KeptSession) {
        if let Ok(mut kept) = self.kept.lock() {
            *kept = Some((driver, session));
        }
    }

    /// A status read in the kept session, if there is one and it answers in time
    /// (a few retransmission intervals); `None` sends the caller to a session of
    /// its own (a read may be repeated; a command is never run here).
    async fn read_in_kept(&self, deadline: Instant) -> Option<PowerState> {
        let (driver, session) = self.kept.lock().ok()?.as_ref().cloned()?;
        let by = (Instant::now() + self.config.retransmit_interval * KEPT_READ_SENDS)
            .min(deadline.checked_sub(ANSWER_MARGIN).unwrap_or(deadline));
        match driver
            .more(session, vec![Command::GetChassisStatus], by)
            .await
        {
            Ok(replies) => match replies.into_iter().next() {
                Some(Ok(Reply::Power(state))) => Some(state),
                _ => None,
            },
            Err(error) => {
                tracing::debug!(host = %self.config.host, %error,
                    "the kept session did not answer; reading in a session of its own");
                if let Ok(mut kept) = self.kept.lock() {
                    if kept.as_ref().is_some_and(|(_, s)| *s == session) {
                        *kept = None;
                    }
                }
                None
            }
        }
    }

    /// The state read with the last command, if it is fresh; taken once.
    fn take_observed(&self) -> Option<PowerState> {
        let (state, at) = self.observed.lock().ok()?.take()?;
        (at.elapsed() < OBSERVED_FRESH).then_some(state)
    }

    async fn read_power(
        &self,
        commands: Vec<Command>,
        deadline: Instant,
    ) -> Result<PowerState, DeviceError> {
        let replies = self.run(commands, deadline).await?;
        Ok(replies
            .iter()
            .find_map(|r| match r {
                Reply::Power(state) => Some(*state),
                Reply::Accepted => None,
            })
            .unwrap_or(PowerState::Unknown))
    }
}

#[async_trait]
impl PowerSwitch for IpmiSwitch {
    async fn status(&self, plug: &Plug, deadline: Instant) -> Result<PowerState, DeviceError> {
        Self::check_plug(plug)?;
        if let Some(state) = self.take_observed() {
            tracing::debug!(host = %self.config.host, state = %state, "read in the command's session");
            return Ok(state);
        }
        if let Some(state) = self.read_in_kept(deadline).await {
            tracing::debug!(host = %self.config.host, state = %state, "read in the kept session");
            return Ok(state);
        }
        self.read_power(vec![Command::GetChassisStatus], deadline)
            .await
    }

    async fn close(&self, deadline: Instant) {
        let kept = self.kept.lock().ok().and_then(|mut kept| kept.take());
        if let Some((driver, session)) = kept {
            driver.close(session, deadline).await;
        }
    }

    async fn switch(
        &self,
        plug: &Plug,
        to: SwitchTo,
        deadline: Instant,
    ) -> Result<(), DeviceError> {
        Self::check_plug(plug)?;
        let control = match to {
            SwitchTo::On => ChassisControl::PowerUp,
            SwitchTo::Off => ChassisControl::PowerDown,
        };
        self.switch_and_read(control, deadline).await
    }

    async fn command(
        &self,
        plug: &Plug,
        command: DeviceCommand,
        deadline: Instant,
    ) -> Result<(), DeviceError> {
        Self::check_plug(plug)?;
        let control = match command {
            // Read in the same session: the off phase of the cycle, when the BMC
            // shows one, is then seen by the fence algorithm's first read.
            DeviceCommand::Cycle => {
                return self
                    .switch_and_read(ChassisControl::PowerCycle, deadline)
                    .await
            }
            DeviceCommand::Reset => ChassisControl::HardReset,
            // An NMI cannot be verified: success means "sent, unverified".
            DeviceCommand::Diag => ChassisControl::DiagnosticInterrupt,
            DeviceCommand::SoftOff => ChassisControl::SoftShutdown,
        };
        self.control(control, deadline).await
    }

    fn least_off(&self) -> std::time::Duration {
        fencekit_core::switch::BMC_LEAST_OFF
    }

    fn supports(&self, command: DeviceCommand) -> bool {
        matches!(
            command,
            DeviceCommand::Cycle
                | DeviceCommand::Reset
                | DeviceCommand::Diag
                | DeviceCommand::SoftOff
        )
    }

    async fn list(&self, deadline: Instant) -> Result<Vec<PlugInfo>, DeviceError> {
        let state = self.status(&Plug::Chassis, deadline).await?;
        Ok(vec![PlugInfo {
            plug: Plug::Chassis,
            name: None,
            alias: None,
            state,
        }])
    }

    async fn check(&self, deadline: Instant) -> Result<(), DeviceError> {
        // Raising the privilege proves the user may switch power, not just read it.
        self.read_power(
            vec![Command::RaisePrivilege, Command::GetChassisStatus],
            deadline,
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::spawn_bmcs;
    use crate::responder::BmcConfig;
    use fencekit_core::schema::{validate, Origin, RawParam, Unknown};

    /// `pairs`, with no suite memory (each test's offer is its own).
    fn params(pairs: &[(&str, &str)]) -> Params {
        let raw: Vec<RawParam> = pairs
            .iter()
            .chain(&[("suite_memory_dir", "")])
            .map(|(k, v)| RawParam::text(*k, *v, Origin::new("test")))
            .collect();
        validate(&[&SCHEMA], &raw, Unknown::Reject, None)
            .unwrap()
            .params
    }

    fn switch_for(addr: SocketAddr, password: &str) -> IpmiSwitch {
        IpmiSwitch::from_params(&params(&[
            ("ipaddr", "127.0.0.1"),
            ("ipport", &addr.port().to_string()),
            ("login", "admin"),
            ("passwd", password),
        ]))
        .unwrap()
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    /// A BMC on an IPv6 address is reached from a socket of that family (an IPv4
    /// socket cannot send there), and one switch talks to both families in turn.
    #[tokio::test]
    async fn a_bmc_on_an_ipv6_address_is_reached_and_so_is_one_on_ipv4() {
        let socket = match tokio::net::UdpSocket::bind("[::1]:0").await {
            Ok(socket) => socket,
            // A kernel without IPv6 cannot run this test, and has no such BMC.
            Err(e) => panic!("cannot bind [::1]:0 for the test BMC: {e}"),
        };
        let addr = socket.local_addr().unwrap();
        let bmc = std::sync::Arc::new(std::sync::Mutex::new(crate::responder::Bmc::new(
            BmcConfig::new("secretpw"),
        )));
        tokio::spawn(crate::driver::serve(socket, bmc.clone()));
        for ip in ["::1", "[::1]"] {
            let sw = IpmiSwitch::from_params(&params(&[
                ("ip", ip),
                ("ipport", &addr.port().to_string()),
                ("username", "admin"),
                ("password", "secretpw"),
            ]))
            .unwrap();
            assert_eq!(
                sw.status(&Plug::Chassis, soon()).await.unwrap(),
                PowerState::On,
                "{ip}"
            );
        }
        let v4 = spawn_bmcs(vec![BmcConfig::new("secretpw")]).await.unwrap();
        let sw = switch_for(v4[0].0, "secretpw");
        assert_eq!(
            sw.status(&Plug::Chassis, soon()).await.unwrap(),
            PowerState::On
        );
    }

    #[tokio::test]
    async fn status_off_and_on_work_against_the_responder_over_udp() {
        let bmcs = spawn_bmcs(vec![BmcConfig::new("secretpw")]).await.unwrap();
        let (addr, bmc) = bmcs[0].clone();
        let sw = switch_for(addr, "secretpw");
        assert_eq!(
            sw.status(&Plug::Chassis, soon()).await.unwrap(),
            PowerState::On
        );
        sw.switch(&Plug::Chassis, SwitchTo::Off, soon())
            .await
            .unwrap();
        assert_eq!(
            sw.status(&Plug::Chassis, soon()).await.unwrap(),
            PowerState::Off
        );
        assert_eq!(bmc.lock().unwrap().power(), PowerState::Off);
        sw.switch(&Plug::Chassis, SwitchTo::On, soon())
            .await
            .unwrap();
        assert_eq!(sw.list(soon()).await.unwrap()[0].state, PowerState::On);
        sw.check(soon()).await.unwrap();
    }

    #[tokio::test]
    async fn the_reads_after_a_command_run_in_its_session_which_is_then_closed() {
        let bmcs = spawn_bmcs(vec![BmcConfig::new("secretpw")]).await.unwrap();
        let (addr, bmc) = &bmcs[0];
        let sw = switch_for(*addr, "secretpw");
        sw.switch(&Plug::Chassis, SwitchTo::Off, soon())
            .await
            .unwrap();
        for _ in 0..4 {
            assert_eq!(
                sw.status(&Plug::Chassis, soon()).await.unwrap(),
                PowerState::Off
            );
        }
        assert_eq!(bmc.lock().unwrap().sessions_opened(), 1);
        assert_eq!(bmc.lock().unwrap().session_count(), 1, "kept open");
        PowerSwitch::close(&sw, soon()).await;
        assert_eq!(bmc.lock().unwrap().session_count(), 0, "closed");
        // The next command opens a session of its own.
        sw.switch(&Plug::Chassis, SwitchTo::On, soon())
            .await
            .unwrap();
        assert_eq!(bmc.lock().unwrap().sessions_opened(), 2);
        PowerSwitch::close(&sw, soon()).await;
        assert_eq!(bmc.lock().unwrap().session_count(), 0);
    }

    #[tokio::test]
    async fn a_kept_session_nobody_closes_is_closed_when_idle() {
        let bmcs = spawn_bmcs(vec![BmcConfig::new("secretpw")]).await.unwrap();
        let (addr, bmc) = &bmcs[0];
        let sw = switch_for(*addr, "secretpw");
        sw.switch(&Plug::Chassis, SwitchTo::Off, soon())
            .await
            .unwrap();
        assert_eq!(bmc.lock().unwrap().session_count(), 1);
        tokio::time::sleep(crate::driver::KEEP_IDLE + Duration::from_millis(500)).await;
        assert_eq!(bmc.lock().unwrap().session_count(), 0);
    }

    #[tokio::test]
    async fn a_kept_session_the_bmc_forgot_gives_way_to_a_new_one_for_the_read() {
        let bmcs = spawn_bmcs(vec![BmcConfig::new("secretpw")]).await.unwrap();
        let (addr, bmc) = &bmcs[0];
        let sw = switch_for(*addr, "secretpw");
        sw.switch(&Plug::Chassis, SwitchTo::Off, soon())
            .await
            .unwrap();
        // The read taken with the command is used up first.
        assert_eq!(
            sw.status(&Plug::Chassis, soon()).await.unwrap(),
            PowerState::Off
        );
        bmc.lock().unwrap().forget_sessions();
        let started = std::time::Instant::now();
        assert_eq!(
            sw.status(&Plug::Chassis, soon()).await.unwrap(),
            PowerState::Off
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(bmc.lock().unwrap().sessions_opened(), 2);
        // And the commands went once each.
        assert_eq!(bmc.lock().unwrap().controls().len(), 1);
    }

    #[tokio::test]
    async fn a_wrong_password_is_an_authentication_error_naming_user_and_host() {
        let bmcs = spawn_bmcs(vec![BmcConfig::new("secretpw")]).await.unwrap();
        let sw = switch_for(bmcs[0].0, "wrong");
        let err = sw.status(&Plug::Chassis, soon()).await.unwrap_err();
        assert!(matches!(err, DeviceError::Auth(_)), "{err}");
        assert!(
            err.to_string().contains("`admin`") && err.to_string().contains("127.0.0.1"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn one_driver_serves_many_bmcs_at_once() {
        let bmcs = spawn_bmcs((0..20).map(|_| BmcConfig::new("secretpw")).collect())
            .await
            .unwrap();
        let driver = Driver::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let switches: Vec<IpmiSwitch> = bmcs
            .iter()
            .map(|(addr, _)| switch_for(*addr, "secretpw").with_driver(driver.clone()))
            .collect();
        let calls = switches
            .iter()
            .map(|sw| sw.switch(&Plug::Chassis, SwitchTo::Off, soon()));
        for result in futures_join(calls).await {
            result.unwrap();
        }
        for (_, bmc) in &bmcs {
            assert_eq!(bmc.lock().unwrap().power(), PowerState::Off);
        }
    }

    async fn futures_join<F: std::future::Future>(
        futures: impl Iterator<Item = F>,
    ) -> Vec<F::Output> {
        let mut set = Vec::new();
        for f in futures {
            set.push(Box::pin(f));
        }
        // Poll every call in one task, so that they run concurrently.
        let mut pending: Vec<_> = set.into_iter().map(Some).collect();
        let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
        std::future::poll_fn(|cx| {
            let mut all = true;
            for (i, slot) in pending.iter_mut().enumerate() {
                if let Some(f) = slot {
                    match f.as_mut().poll(cx) {
                        std::task::Poll::Ready(v) => {
                            results[i] = Some(v);
                            *slot = None;
                        }
                        std::task::Poll::Pending => all = false,
                    }
                }
            }
            if all {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
        results.into_iter().flatten().collect()
    }

    fn bmc_with(
        configure: impl FnOnce(&mut BmcConfig),
    ) -> impl std::future::Future<
        Output = (
            SocketAddr,
            std::sync::Arc<std::sync::Mutex<crate::responder::Bmc>>,
        ),
    > {
        let mut config = BmcConfig::new("secretpw");
        configure(&mut config);
        async move { spawn_bmcs(vec![config]).await.unwrap().remove(0) }
    }

    #[tokio::test]
    async fn a_plus_asks_for_the_user_by_name_and_privilege_and_a_null_user_needs_consent() {
        let (addr, _bmc) = bmc_with(|c| {
            c.users.push(crate::responder::BmcUser::new(
                "",
                "nullpw",
                Privilege::Operator,
            ));
        })
        .await;
        let port = addr.port().to_string();
        let switch = |pairs: &[(&str, &str)]| {
            let mut all = vec![("ipaddr", "127.0.0.1"), ("ipport", port.as_str())];
            all.extend_from_slice(pairs);
            IpmiSwitch::from_params(&params(&all))
        };
        // admin's level is ADMINISTRATOR: found by name for any level up to it, by
        // name and privilege only at it.
        for (level, works) in [
            ("operator", true),
            ("administrator+", true),
            ("operator+", false),
        ] {
            let sw = switch(&[
                ("login", "admin"),
                ("passwd", "secretpw"),
                ("privlvl", level),
            ])
            .unwrap();
            assert_eq!(
                sw.status(&Plug::Chassis, soon()).await.is_ok(),
                works,
                "privlvl={level}"
            );
        }
        // The null user: refused unless asked for, then its password logs in.
        let err = switch(&[("passwd", "nullpw")]).unwrap_err();
        assert!(err.to_string().contains("allow_null_username"), "{err}");
        let sw = switch(&[("passwd", "nullpw"), ("allow_null_username", "1")]).unwrap();
        assert_eq!(
            sw.status(&Plug::Chassis, soon()).await.unwrap(),
            PowerState::On
        );
    }

    #[tokio::test]
    async fn a_bmc_that_drops_suite_17_costs_the_fallback_once_with_a_memory() {
        let (addr, _bmc) = bmc_with(|c| {
            c.suites = vec![3];
            c.faults.drop_unsupported_suites = true;
        })
        .await;
        let memory = tempfile::tempdir().unwrap();
        let dir = memory.path().display().to_string();
        let port = addr.port().to_string();
        let switch = || {
            let raw: Vec<RawParam> = [
                ("ipaddr", "127.0.0.1"),
                ("ipport", port.as_str()),
                ("login", "admin"),
                ("passwd", "secretpw"),
                ("suite_memory_dir", dir.as_str()),
            ]
            .iter()
            .map(|(k, v)| RawParam::text(*k, *v, Origin::new("test")))
            .collect();
            IpmiSwitch::from_params(
                &validate(&[&SCHEMA], &raw, Unknown::Reject, None)
                    .unwrap()
                    .params,
            )
            .unwrap()
        };
        // 17 is offered, left unanswered, and 3 follows after a few sends.
        let started = std::time::Instant::now();
        assert_eq!(
            switch().status(&Plug::Chassis, soon()).await.unwrap(),
            PowerState::On
        );
        let first = started.elapsed();
        assert!(first >= Duration::from_secs(1), "{first:?}");
        // The next run offers 3 first: one handshake, no wait.
        let started = std::time::Instant::now();
        assert_eq!(
            switch().status(&Plug::Chassis, soon()).await.unwrap(),
            PowerState::On
        );
        let second = started.elapsed();
        assert!(second < Duration::from_millis(500), "{second:?}");
    }

    /// A fence through core's algorithm against one BMC; the plug must reach its
    /// state within half the time.
    async fn fence(
        sw: IpmiSwitch,
        action: fencekit_core::FenceAction,
        method: fencekit_core::Method,
        timeout: Duration,
    ) -> fencekit_core::Outcome {
        let mut devices = fencekit_core::fence::Devices::new();
        devices.insert("bmc1".to_string(), std::sync::Arc::new(sw) as _);
        let target = fencekit_core::FenceTarget {
            node: "node1".into(),
            plugs: vec![fencekit_core::TargetPlug {
                device: "bmc1".into(),
                plug: Plug::Chassis,
            }],
        };
        let options = fencekit_core::FenceOptions {
            timeout,
            power_timeout: timeout / 2,
            method,
            ..Default::default()
        };
        fencekit_core::fence(&devices, &target, action, &options).await
    }

    #[tokio::test]
    async fn off_of_a_node_already_off_on_a_bmc_refusing_it_in_present_state_reads_off_and_succeeds(
    ) {
        let (addr, bmc) = bmc_with(|c| {
            c.power = PowerState::Off;
            c.faults.refuse_when_already_there = true;
        })
        .await;
        let outcome = fence(
            switch_for(addr, "secretpw"),
            fencekit_core::FenceAction::Off,
            fencekit_core::Method::OnOff,
            Duration::from_secs(5),
        )
        .await;
        assert!(outcome.success && outcome.fenced, "{outcome:?}");
        // The BMC was asked (and refused), the chassis was read: never assumed.
        assert_eq!(bmc.lock().unwrap().controls(), &[ChassisControl::PowerDown]);
        assert_eq!(bmc.lock().unwrap().power(), PowerState::Off);
    }

    #[tokio::test]
    async fn a_reboot_of_a_node_already_off_on_such_a_bmc_ends_with_it_on() {
        let (addr, bmc) = bmc_with(|c| {
            c.power = PowerState::Off;
            c.faults.refuse_when_already_there = true;
        })
        .await;
        let outcome = fence(
            switch_for(addr, "secretpw"),
            fencekit_core::FenceAction::Reboot,
            fencekit_core::Method::OnOff,
            Duration::from_secs(5),
        )
        .await;
        assert!(outcome.success, "{outcome:?}");
        assert_eq!(bmc.lock().unwrap().power(), PowerState::On);
    }

    #[tokio::test]
    async fn a_power_down_sent_again_after_a_lost_reply_and_refused_as_already_off_stands() {
        // The iDRAC carries out the first power down, its reply is lost, and it
        // refuses the one sent again with 0xD5: the node is off, and reads so.
        let (addr, bmc) = bmc_with(|c| {
            c.faults.refuse_when_already_there = true;
            c.faults.lose_first_control_reply = true;
        })
        .await;
        let outcome = fence(
            switch_for(addr, "secretpw"),
            fencekit_core::FenceAction::Off,
            fencekit_core::Method::OnOff,
            Duration::from_secs(8),
        )
        .await;
        assert!(outcome.success && outcome.fenced, "{}", outcome.summary());
        assert_eq!(
            bmc.lock().unwrap().controls(),
            &[ChassisControl::PowerDown, ChassisControl::PowerDown]
        );
        assert_eq!(bmc.lock().unwrap().power(), PowerState::Off);
    }

    #[tokio::test]
    async fn on_of_a_node_already_on_on_such_a_bmc_reads_on_and_succeeds() {
        let (addr, bmc) = bmc_with(|c| c.faults.refuse_when_already_there = true).await;
        let sw = switch_for(addr, "secretpw");
        sw.switch(&Plug::Chassis, SwitchTo::On, soon())
            .await
            .unwrap();
        assert_eq!(
            sw.status(&Plug::Chassis, soon()).await.unwrap(),
            PowerState::On
        );
        assert_eq!(bmc.lock().unwrap().controls(), &[ChassisControl::PowerUp]);
    }

    #[tokio::test]
    async fn a_refusal_in_present_state_of_a_node_that_reads_on_is_a_clear_failure() {
        let (addr, bmc) = bmc_with(|c| c.faults.refuse_power_down = true).await;
        let sw = switch_for(addr, "secretpw");
        let err = sw
            .switch(&Plug::Chassis, SwitchTo::Off, soon())
            .await
            .unwrap_err();
        assert!(matches!(err, DeviceError::Refused(_)), "{err}");
        let text = err.to_string();
        assert!(text.contains("0xd5") && text.contains("reads on"), "{text}");
        assert_eq!(bmc.lock().unwrap().power(), PowerState::On);
        // Nothing was left for the next status read to take as "off".
        assert_eq!(
            sw.status(&Plug::Chassis, soon()).await.unwrap(),
            PowerState::On
        );
    }

    #[tokio::test]
    async fn an_honest_cycle_is_seen_off_and_then_on() {
        let (addr, bmc) = bmc_with(|_| {}).await;
        let outcome = fence(
            switch_for(addr, "secretpw"),
            fencekit_core::FenceAction::Reboot,
            fencekit_core::Method::Cycle,
            Duration::from_secs(10),
        )
        .await;
        assert!(outcome.success && outcome.fenced, "{outcome:?}");
        assert_eq!(
            bmc.lock().unwrap().controls(),
            &[ChassisControl::PowerCycle]
        );
        assert!(outcome.plugs[0].off_confirmed.is_some(), "{outcome:?}");
    }

    #[tokio::test]
    async fn a_bmc_that_accepts_a_cycle_and_stays_on_fails_by_its_deadline_naming_device_and_plug()
    {
        let (addr, bmc) = bmc_with(|c| c.faults.lie_about_cycle = true).await;
        let timeout = Duration::from_secs(3);
        let started = std::time::Instant::now();
        let outcome = fence(
            switch_for(addr, "secretpw"),
            fencekit_core::FenceAction::Reboot,
            fencekit_core::Method::Cycle,
            timeout,
        )
        .await;
        assert!(started.elapsed() < timeout + Duration::from_secs(1));
        assert!(!outcome.success && !outcome.fenced, "{outcome:?}");
        let summary = outcome.summary();
        assert!(summary.contains("bmc1"), "{summary}");
        assert_eq!(bmc.lock().unwrap().power(), PowerState::On);
    }

    /// A name with two addresses whose first gets no answer (an AAAA record where
    /// the BMC listens on IPv4 only): the second is tried and answers, within the
    /// deadline.
    #[tokio::test]
    async fn the_next_address_is_tried_when_the_first_gives_no_answer() {
        let bmcs = spawn_bmcs(vec![BmcConfig::new("secretpw")]).await.unwrap();
        let (addr, _) = bmcs[0].clone();
        // A bound socket that never answers, on the other family.
        let silent = tokio::net::UdpSocket::bind("[::1]:0").await.unwrap();
        let silent_addr = silent.local_addr().unwrap();
        let sw = switch_for(addr, "secretpw");
        let started = Instant::now();
        let replies = sw
            .run_on(
                &[silent_addr, addr],
                vec![Command::GetChassisStatus],
                started + Duration::from_secs(8),
                false,
            )
            .await
            .unwrap();
        assert_eq!(replies, vec![Ok(Reply::Power(PowerState::On))]);
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "{:?}",
            started.elapsed()
        );
        drop(silent);
    }

    /// Once the BMC answered at one address of its name, every later command and
    /// read of the switch goes there only: a read cannot come from another address
    /// (here the configured one, a BMC powered on), whatever the name resolves to.
    #[tokio::test]
    async fn the_address_that_answered_is_the_only_one_read_after() {
        let mut off = BmcConfig::new("secretpw");
        off.power = PowerState::Off;
        let bmcs = spawn_bmcs(vec![BmcConfig::new("secretpw"), off])
            .await
            .unwrap();
        let (configured, _) = bmcs[0].clone();
        let (answering, _) = bmcs[1].clone();
        let silent = tokio::net::UdpSocket::bind("[::1]:0").await.unwrap();
        let sw = switch_for(configured, "secretpw");
        let replies = sw
            .run_on(
                &[silent.local_addr().unwrap(), answering],
                vec![Command::GetChassisStatus],
                Instant::now() + Duration::from_secs(8),
                false,
            )
            .await
            .unwrap();
        assert_eq!(replies, vec![Ok(Reply::Power(PowerState::Off))]);
        for _ in 0..2 {
            assert_eq!(
                sw.status(&Plug::Chassis, soon()).await.unwrap(),
                PowerState::Off
            );
        }
        assert_eq!(bmcs[0].1.lock().unwrap().power(), PowerState::On);
    }

    /// A second address of one family may be another BMC: it is never tried, even
    /// when the first gets no answer, so nothing there is switched.
    #[tokio::test]
    async fn a_second_address_of_one_family_is_never_switched() {
        let bmcs = spawn_bmcs(vec![BmcConfig::new("secretpw")]).await.unwrap();
        let (other, _) = bmcs[0].clone();
        let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let silent_addr = silent.local_addr().unwrap();
        let (peers, others) = first_of_each_family(vec![silent_addr, other, silent_addr]);
        assert_eq!((peers.as_slice(), others), ([silent_addr].as_slice(), true));
        let sw = switch_for(other, "secretpw");
        let started = Instant::now();
        let replies = sw
            .run_on(
                &peers,
                vec![Command::ChassisControl(ChassisControl::PowerDown)],
                started + Duration::from_secs(3),
                false,
            )
            .await;
        assert!(replies.is_err(), "{replies:?}");
        assert!(started.elapsed() < Duration::from_secs(4));
        assert_eq!(bmcs[0].1.lock().unwrap().power(), PowerState::On);
    }

    #[test]
    fn a_name_gives_its_first_address_of_each_family() {
        let a: SocketAddr = "192.0.2.1:623".parse().unwrap();
        let b: SocketAddr = "192.0.2.2:623".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:623".parse().unwrap();
        let v6b: SocketAddr = "[2001:db8::2]:623".parse().unwrap();
        assert_eq!(first_of_each_family(vec![a, a]), (vec![a], false));
        assert_eq!(first_of_each_family(vec![v6, a, v6]), (vec![v6, a], false));
        assert_eq!(
            first_of_each_family(vec![v6, a, b, v6b]),
            (vec![v6, a], true)
        );
        assert_eq!(first_of_each_family(vec![]), (vec![], false));
        // IPv4 hosts behind IPv6 addresses are of the IPv4 family.
        for carried in ["[::ffff:192.0.2.2]:623", "[64:ff9b::c000:202]:623"] {
            let carried: SocketAddr = carried.parse().unwrap();
            assert_eq!(
                first_of_each_family(vec![a, carried, v6]),
                (vec![a, v6], true),
                "{carried}"
            );
            assert_eq!(
                first_of_each_family(vec![carried, a]),
                (vec![carried], true),
                "{carried}"
            );
        }
    }

    /// An all-zero K_g (a BMC's "none set") is no K_g, as ipmitool and FreeIPMI
    /// read it: the session with a BMC that has none works.
    #[tokio::test]
    async fn an_all_zero_kg_is_no_kg() {
        let bmcs = spawn_bmcs(vec![BmcConfig::new("secretpw")]).await.unwrap();
        let (addr, _) = bmcs[0].clone();
        for kg in ["0000000000000000000000000000000000000000", "0x00000000"] {
            let sw = IpmiSwitch::from_params(&params(&[
                ("ip", "127.0.0.1"),
                ("ipport", &addr.port().to_string()),
                ("username", "admin"),
                ("password", "secretpw"),
                ("hexadecimal_kg", kg),
            ]))
            .unwrap();
            assert_eq!(
                sw.status(&Plug::Chassis, soon()).await.unwrap(),
                PowerState::On,
                "{kg}"
            );
        }
    }

    #[test]
    fn debug_output_holds_neither_password_nor_key() {
        let sw = IpmiSwitch::from_params(&params(&[
            ("ip", "127.0.0.1"),
            ("username", "admin"),
            ("password", "uniq-pw-Zq81x"),
            ("hexadecimal_kg", "5a7138317a7138317a71"),
        ]))
        .unwrap();
        let shown = format!("{sw:?} {sw:#?}");
        assert!(
            !shown.contains("Zq81x") && !shown.to_lowercase().contains("5a713831"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn only_the_chassis_plug_exists() {
        let sw = switch_for(SocketAddr::from(([127, 0, 0, 1], 9)), "x");
        let err = sw.status(&Plug::Number(1), soon()).await.unwrap_err();
        assert!(matches!(err, DeviceError::UnknownPlug { .. }));
    }

    #[tokio::test]
    async fn nothing_listening_ends_by_the_deadline_with_no_answer() {
        // A port nothing listens on: bind one, note it, drop it.
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let sw = switch_for(SocketAddr::from(([127, 0, 0, 1], port)), "x");
        let err = sw
            .status(&Plug::Chassis, Instant::now() + Duration::from_millis(1200))
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err}");
    }

    #[test]
    fn the_schema_accepts_fence_agent_names_and_refuses_bad_settings() {
        let p = params(&[
            ("ip", "h"),
            ("userid", "u"),
            ("password", "p"),
            ("cipher", "3"),
            ("privlvl", "ADMINISTRATOR"),
        ]);
        let sw = IpmiSwitch::from_params(&p).unwrap();
        assert_eq!(sw.config.suites[0].id, 3);
        assert_eq!(sw.config.privilege, Privilege::Administrator);
        let bad = params(&[
            ("ip", "h"),
            ("userid", "u"),
            ("password", "p"),
            ("cipher", "0"),
        ]);
        assert!(IpmiSwitch::from_params(&bad)
            .unwrap_err()
            .to_string()
            .contains("allow_insecure_cipher"));
        let long = params(&[
            ("ip", "h"),
            ("userid", "u"),
            ("password", "123456789012345678901"),
        ]);
        assert!(IpmiSwitch::from_params(&long)
            .unwrap_err()
            .to_string()
            .contains("at most 20"));
        let kg = params(&[
            ("ip", "h"),
            ("userid", "u"),
            ("password", "p"),
            ("hexadecimal_kg", "zz"),
        ]);
        assert!(IpmiSwitch::from_params(&kg).is_err());
        for forbidden in ["timeout", "power_timeout", "power_wait", "method", "delay"] {
            assert!(
                SCHEMA.find(forbidden).is_none(),
                "{forbidden} belongs to core's fence schema"
            );
        }
    }

    fn protocol_of(extra: &[(&str, &str)]) -> Result<crate::session::client::Protocol, String> {
        let mut pairs = vec![
            ("ip", "127.0.0.1"),
            ("username", "admin"),
            ("password", "secretpw"),
        ];
        pairs.extend_from_slice(extra);
        IpmiSwitch::from_params(&params(&pairs))
            .map(|sw| sw.config.protocol())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn ipmi_1_5_is_spoken_only_when_lanplus_0_interface_lan_or_auth_alone_asks() {
        use crate::session::client::Protocol;
        let v15 = |auth, explicit| Ok(Protocol::Ipmi15 { auth, explicit });
        assert_eq!(protocol_of(&[]), Ok(Protocol::RmcpPlus));
        assert_eq!(protocol_of(&[("lanplus", "1")]), Ok(Protocol::RmcpPlus));
        // `auth` with lanplus=1 stays RMCP+ (ipmitool -I lanplus ignores -A); `auth`
        // alone is fence_ipmilan's IPMI 1.5 configuration (its lanplus default is 0).
        assert_eq!(
            protocol_of(&[("lanplus", "1"), ("auth", "password")]),
            Ok(Protocol::RmcpPlus)
        );
        assert_eq!(
            protocol_of(&[("auth", "password")]),
            v15(AuthType::Password, true)
        );
        assert_eq!(protocol_of(&[("lanplus", "0")]), v15(AuthType::Md5, false));
        assert_eq!(
            protocol_of(&[("lanplus", "false"), ("auth", "md5")]),
            v15(AuthType::Md5, true)
        );
        assert_eq!(
            protocol_of(&[("interface", "lan"), ("auth", "password")]),
            v15(AuthType::Password, true)
        );
        assert_eq!(
            protocol_of(&[("interface", "lan"), ("auth", "none")]),
            v15(AuthType::None, true)
        );
    }

    #[test]
    fn ipmi_1_5_refuses_what_cannot_apply_and_accepts_what_switches_the_same() {
        let refused = protocol_of(&[("lanplus", "1"), ("interface", "lan")]).unwrap_err();
        assert!(refused.contains("contradict"), "{refused}");
        let refused = protocol_of(&[("lanplus", "0"), ("interface", "lanplus")]).unwrap_err();
        assert!(refused.contains("contradict"), "{refused}");
        // auth=none over IPMI 1.5 needs no password, as with fence_ipmilan.
        let none = IpmiSwitch::from_params(&params(&[
            ("ip", "127.0.0.1"),
            ("username", "admin"),
            ("auth", "none"),
        ]));
        assert!(none.is_ok(), "{:?}", none.err());
        let refused = protocol_of(&[("lanplus", "0"), ("hexadecimal_kg", "0102")]).unwrap_err();
        assert!(refused.contains("hexadecimal_kg"), "{refused}");
        // A pinned cipher and the `+` lookup change nothing that is switched.
        assert!(protocol_of(&[("lanplus", "0"), ("cipher", "3")]).is_ok());
        assert!(protocol_of(&[("lanplus", "0"), ("privlvl", "operator+")]).is_ok());
        let long = IpmiSwitch::from_params(&params(&[
            ("ip", "127.0.0.1"),
            ("username", "admin"),
            ("password", "a-password-of-20-byt"),
            ("lanplus", "0"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(long.contains("16 bytes"), "{long}");
        assert!(!long.contains("a-password-of-20-byt"), "{long}");
    }

    /// Through the UDP driver to the responder's IPMI 1.5 side: off, confirmed by
    /// the BMC's own state.
    #[tokio::test]
    async fn lanplus_0_switches_a_bmc_off_over_ipmi_1_5() {
        let mut cfg = BmcConfig::new("secretpw");
        cfg.v15_auths = vec![AuthType::Md5];
        cfg.suites = vec![];
        let (addr, bmc) = spawn_bmcs(vec![cfg]).await.unwrap().remove(0);
        let sw = IpmiSwitch::from_params(&params(&[
            ("ip", "127.0.0.1"),
            ("ipport", &addr.port().to_string()),
            ("username", "admin"),
            ("password", "secretpw"),
            ("lanplus", "0"),
        ]))
        .unwrap();
        sw.switch(&Plug::Chassis, SwitchTo::Off, soon())
            .await
            .unwrap();
        assert_eq!(bmc.lock().unwrap().power(), PowerState::Off);
        assert_eq!(
            sw.status(&Plug::Chassis, soon()).await.unwrap(),
            PowerState::Off
        );
        PowerSwitch::close(&sw, soon()).await;
    }
}
