use clap::Parser;

/// `NAME=value` arguments, as `make` takes them (`lab experiment NAME=index QUICK=1`): set in
/// the environment and taken out of the arguments. An unknown name is one line.
fn take_assignments(args: Vec<String>) -> Result<Vec<String>, String> {
    let mut rest = Vec::new();
    for arg in args {
        let Some((name, value)) = arg.split_once('=') else {
            rest.push(arg);
            continue;
        };
        let looks_like_a_name = !name.is_empty()
            && name.starts_with(|c: char| c.is_ascii_uppercase())
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !looks_like_a_name {
            rest.push(arg);
            continue;
        }
        if !lab::VARIABLES.contains(&name) && stack::settings::find(name).is_none() {
            return Err(format!(
                "{name} is not a lab setting or variable (`lab settings` lists the settings)"
            ));
        }
        // SAFETY: called before any thread exists.
        std::env::set_var(name, value);
    }
    Ok(rest)
}

fn main() {
    let args = match take_assignments(std::env::args().collect()) {
        Ok(args) => args,
        Err(line) => {
            eprintln!("lab: error: {line}");
            std::process::exit(2);
        }
    };
    // `make` exports its variables even when unset (QUICK=, RUNTIME=): empty means unset.
    // Done before any thread exists, the only time changing the environment is sound.
    for name in lab::VARIABLES {
        if std::env::var_os(name).is_some_and(|v| v.is_empty()) {
            std::env::remove_var(name);
        }
    }
    let cli = match lab::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => err.exit(), // --help, --version: exit 0
        Err(err) => {
            // One line, as `make` gives for an unknown target: clap's first line, and where to look.
            let text = err.render().to_string();
            let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
            let mut first = lines
                .next()
                .unwrap_or("bad arguments")
                .trim_start_matches("error: ")
                .to_string();
            // "the following required arguments were not provided:" names them next.
            if first.ends_with(':') {
                if let Some(next) = lines.next() {
                    first = format!("{first} {next}");
                }
            }
            eprintln!("lab: error: {first} (`lab --help` lists the commands)");
            std::process::exit(2);
        }
    };
    let root = lab::find_root(cli.root.clone()).ok();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let place = stack::container::Place::here();
    let result = runtime.block_on(lab::run(cli, place));
    if place.inside() {
        if let Some(root) = &root {
            stack::container::hand_back(root);
        }
    }
    if let Err(err) = result {
        eprintln!("lab: error: {err:#}");
        // k6's code for failed thresholds: a grader or CI tells it from a broken tool.
        let sla = err.downcast_ref::<lab::sla::SlaMissed>().is_some();
        std::process::exit(if sla { lab::sla::SLA_EXIT } else { 1 });
    }
}
