//! The `redfish` plugin's parameters: `fence_redfish`'s names and meanings, and a CA
//! file of the site's own.

use fencekit_core::device_params;
use fencekit_core::schema::{ParamSpec, ParamType, PluginKind};
use fencekit_core::{DeviceCommand, Schema};

const PARAMS: &[ParamSpec] = &[
    device_params::ip(
        "address or host name of the BMC's Redfish service (`host:port` also accepted)",
    ),
    device_params::ipport("TCP port of the Redfish service (HTTPS)").default("443"),
    device_params::username("Redfish account name").required(),
    device_params::password("Redfish account password"),
    // fence_redfish's older names, listed so that metadata shows them as it does
    // (parameter names match with `-` and `_` alike anyway).
    ParamSpec::new("redfish_uri", "the service root")
        .aliases(&["redfish-uri"])
        .default("/redfish/v1"),
    ParamSpec::new(
        "systems_uri",
        "the system to switch (e.g. /redfish/v1/Systems/System.Embedded.1); \
         without it, the service's only system, or the one the plug names by Id",
    )
    .aliases(&["systems-uri"]),
    ParamSpec::new(
        "ssl",
        "HTTPS with the certificate verified (always: Redfish is served over HTTPS \
         only, and ssl=0 means HTTPS all the same, as for fence_redfish)",
    )
    .short('z')
    .ty(ParamType::Boolean),
    ParamSpec::new(
        "ssl_secure",
        "HTTPS with the certificate verified (the default)",
    )
    .ty(ParamType::Boolean),
    ParamSpec::new(
        "ssl_insecure",
        "HTTPS without verifying the certificate: anyone on the path can pose as the \
         BMC and report a node off that is not",
    )
    .ty(ParamType::Boolean),
    ParamSpec::new(
        "ssl_ca_file",
        "PEM file of the certificate authorities to trust for the BMC (instead of the \
         system's store)",
    ),
    ParamSpec::new(
        "port_as_ip",
        "the plug (port) is the BMC's address, as fence_redfish's --port-as-ip",
    )
    .ty(ParamType::Boolean),
    ParamSpec::new(
        "gnutlscli_path",
        "fence_redfish's path to gnutls-cli: not used (fencekit speaks TLS itself)",
    ),
];

/// The `redfish` plugin's schema.
pub const SCHEMA: Schema = Schema {
    plugin: "redfish",
    kind: PluginKind::Power,
    summary: "Redfish BMC over HTTPS (iDRAC, iLO, XCC, OpenBMC), native",
    description: "Switches a server through its BMC's Redfish service: \
                  ComputerSystem.Reset (ForceOff, On; PowerCycle or ForceRestart for \
                  the device's own cycle) and PowerState read back, over one verified \
                  HTTPS connection. A service with several systems (a blade chassis) \
                  needs the plug (a system's Id) or systems_uri; an ambiguous choice \
                  is refused.",
    url: "https://www.dmtf.org/standards/redfish",
    multi_plug: true,
    plug_optional: true,
    commands: &[
        DeviceCommand::Cycle,
        DeviceCommand::Diag,
        DeviceCommand::SoftOff,
    ],
    params: PARAMS,
    open: false,
};
