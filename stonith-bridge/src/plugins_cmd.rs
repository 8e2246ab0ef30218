//! `stonith-bridge plugins [--plugin-dir DIR]`: every plugin this fencekit knows, with
//! where it came from (built in, or the shared object it was loaded from) and the
//! plugin ABI version it speaks, and the files in the plugin directory that could not
//! be loaded, with why.

use std::path::Path;

use fencekit_plugins::{Registry, Source, ABI_VERSION};

/// The listing, as printed.
pub fn list(registry: &Registry) -> String {
    let rows: Vec<[String; 4]> = registry
        .power_plugins()
        .map(|plugin| {
            let (abi, source) = match plugin.source() {
                Source::BuiltIn => ("-".to_string(), "built-in".to_string()),
                Source::External(external) => (
                    external.abi_version().to_string(),
                    external.path().display().to_string(),
                ),
            };
            [
                plugin.schema.plugin.to_string(),
                abi,
                source,
                plugin.schema.summary.to_string(),
            ]
        })
        .collect();
    let header = [
        "PLUGIN".to_string(),
        "ABI".to_string(),
        "SOURCE".to_string(),
        "SUMMARY".to_string(),
    ];
    let mut widths = [0usize; 3];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = format!(
        "External plugins speak plugin ABI version {ABI_VERSION}; built-in plugins are compiled in.\n\n"
    );
    for row in std::iter::once(&header).chain(&rows) {
        let line = format!(
            "{:w0$}  {:w1$}  {:w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if !registry.problems().is_empty() {
        out.push_str("\nNot loaded:\n");
        for problem in registry.problems() {
            out.push_str(&format!("  {problem}\n"));
        }
    }
    out
}

/// Runs the subcommand: plugins from `plugin_dir` (else `$FENCEKIT_PLUGIN_DIR`, else
/// the default directory). Exit status 1 when a file in the directory could not be
/// loaded, so that a broken plugin does not go unnoticed; 0 otherwise.
pub fn run(plugin_dir: Option<&Path>) -> u8 {
    let registry = Registry::discover(plugin_dir);
    print!("{}", list(&registry));
    if registry.problems().is_empty() {
        0
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_plugins_are_listed_as_built_in() {
        let text = list(&Registry::builtin());
        let sim = text
            .lines()
            .find(|l| l.starts_with("sim "))
            .unwrap_or_else(|| panic!("no sim line in:\n{text}"));
        assert!(sim.contains("built-in"), "{sim}");
        assert!(text.lines().any(|l| l.starts_with("script ")), "{text}");
        assert!(!text.contains("Not loaded"), "{text}");
    }

    #[test]
    fn files_that_could_not_be_loaded_are_listed_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("libbroken.so"), b"not a shared object").unwrap();
        let text = list(&Registry::discover(Some(dir.path())));
        assert!(text.contains("Not loaded:"), "{text}");
        assert!(text.contains("libbroken.so"), "{text}");
    }
}
