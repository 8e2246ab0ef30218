//! `SANFilesystem`'s meta-data: the stock `Filesystem` agent's own, as that agent
//! prints it on this node, with the agent's name changed, a paragraph saying what
//! this agent adds, and our parameters appended. Generated at every call rather than
//! copied, so that the parameters and actions always match the `Filesystem` the
//! agent delegates to.

use thiserror::Error;

use super::params::PARAMS;
use crate::xml::escape;

/// Why the stock meta-data could not be extended.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MetadataError {
    #[error("the Filesystem meta-data has no {what}")]
    Unexpected { what: &'static str },
}

const ADDED: &str = "SANFilesystem (fencekit) is the Filesystem agent with a SAN path check: start, stop and validate-all are Filesystem's own; monitor and status run Filesystem's and then, while the filesystem is mounted, check the paths to its device (FC sysfs, dm-multipath, EMC PowerPath; see san_backend). Fewer usable paths than min_paths fails the monitor with the reason, so that the cluster recovers the resource; fewer than expected is logged as a warning. The agent never reboots or fences its own node. Below: Filesystem's description.";

/// Our parameters as `<parameter>` elements.
pub fn parameters_xml() -> String {
    let mut out = String::new();
    for p in PARAMS {
        let default = if p.default.is_empty() {
            String::new()
        } else {
            format!(" default=\"{}\"", escape(p.default))
        };
        out.push_str(&format!(
            "<parameter name=\"{}\" unique=\"0\" required=\"0\">\n<longdesc lang=\"en\">\n{}\n</longdesc>\n<shortdesc lang=\"en\">{}</shortdesc>\n<content type=\"{}\"{default} />\n</parameter>\n\n",
            p.name,
            escape(p.longdesc),
            escape(p.shortdesc),
            p.content,
        ));
    }
    out
}

/// Extends the stock agent's meta-data (`stock`) into ours.
pub fn extend(stock: &str, name: &str) -> Result<String, MetadataError> {
    let open = "<resource-agent name=\"";
    let at = stock.find(open).ok_or(MetadataError::Unexpected {
        what: "resource-agent element",
    })?;
    let name_start = at + open.len();
    let name_len = stock[name_start..]
        .find('"')
        .ok_or(MetadataError::Unexpected { what: "agent name" })?;
    let mut out = String::with_capacity(stock.len() + 8192);
    out.push_str(&stock[..name_start]);
    out.push_str(&escape(name));
    let rest = &stock[name_start + name_len..];

    // The agent's own longdesc is the first one after the element opens.
    let longdesc = "<longdesc lang=\"en\">";
    let ld = rest
        .find(longdesc)
        .ok_or(MetadataError::Unexpected { what: "longdesc" })?
        + longdesc.len();
    out.push_str(&rest[..ld]);
    out.push('\n');
    out.push_str(&escape(ADDED));
    out.push('\n');
    let rest = &rest[ld..];

    let close = "</parameters>";
    let end = rest.rfind(close).ok_or(MetadataError::Unexpected {
        what: "parameters element",
    })?;
    out.push_str(&rest[..end]);
    out.push_str(&parameters_xml());
    out.push_str(&rest[end..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STOCK: &str = r#"<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="Filesystem" version="1.1">
<version>1.0</version>
<longdesc lang="en">
Resource script for Filesystem.
</longdesc>
<shortdesc lang="en">Manages filesystem mounts</shortdesc>
<parameters>
<parameter name="device" required="1">
<longdesc lang="en">The name of block device</longdesc>
<shortdesc lang="en">block device</shortdesc>
<content type="string" default="" />
</parameter>
</parameters>
<actions>
<action name="monitor" depth="0" timeout="40s" interval="20s" />
</actions>
</resource-agent>
"#;

    #[test]
    fn the_name_changes_and_our_parameters_follow_the_stock_ones() {
        let ours = extend(STOCK, "SANFilesystem").unwrap();
        assert!(ours.contains("<resource-agent name=\"SANFilesystem\" version=\"1.1\">"));
        assert!(!ours.contains("name=\"Filesystem\""));
        let device = ours.find("<parameter name=\"device\"").unwrap();
        let backend = ours.find("<parameter name=\"san_backend\"").unwrap();
        let close = ours.find("</parameters>").unwrap();
        assert!(device < backend && backend < close);
        for p in PARAMS {
            assert!(ours.contains(&format!("<parameter name=\"{}\"", p.name)));
        }
        assert!(ours.contains("<content type=\"string\" default=\"auto\" />"));
        assert!(ours.contains("<action name=\"monitor\" depth=\"0\""));
        assert!(ours.contains("Resource script for Filesystem."));
        assert!(ours.contains("never reboots or fences its own node"));
    }

    #[test]
    fn something_that_is_not_agent_meta_data_is_refused() {
        assert!(extend("usage: Filesystem {start|stop}", "SANFilesystem").is_err());
        assert!(extend("<resource-agent name=\"x\"><longdesc lang=\"en\">", "Y").is_err());
    }

    #[test]
    fn descriptions_are_escaped() {
        assert!(!parameters_xml().contains("& "));
        assert!(parameters_xml().contains("<content type=\"integer\" default=\"1\" />"));
        assert!(parameters_xml()
            .contains("<parameter name=\"expected_paths\" unique=\"0\" required=\"0\">"));
    }
}
