//! Which commands a user may run: Redis ACL-style rules (`+@read`,
//! `-@dangerous`, `+get`, `-config|set`, `allcommands`, `nocommands`)
//! compiled into one flag per command of the table.

use crate::command::{commands, id_of, AclCategories, CommandId};

/// A user's compiled command permissions.
#[derive(Debug, Clone)]
pub struct CommandRules {
    /// The rules as written, for ACL LIST / GETUSER.
    text: std::sync::Arc<str>,
    allowed: Vec<bool>,
    /// Commands not in the table (renamed, newer): allowed only under
    /// `+@all`, as Redis's `allcommands` covers future commands.
    unknown: bool,
}

impl CommandRules {
    /// Every command.
    pub fn all() -> CommandRules {
        CommandRules {
            text: "+@all".into(),
            allowed: vec![true; CommandId::COUNT],
            unknown: true,
        }
    }

    /// Compiles space-separated rules, applied left to right from "nothing
    /// allowed". Errors name the rule that does not parse.
    pub fn parse(rules: &str) -> Result<CommandRules, String> {
        let mut compiled = CommandRules {
            text: rules
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .into(),
            allowed: vec![false; CommandId::COUNT],
            unknown: false,
        };
        for rule in rules.split_whitespace() {
            let lower = rule.to_ascii_lowercase();
            let (allow, target) = match lower.as_str() {
                "allcommands" => (true, "@all"),
                "nocommands" => (false, "@all"),
                other => match other.split_at_checked(1) {
                    Some(("+", target)) => (true, target),
                    Some(("-", target)) => (false, target),
                    _ => {
                        return Err(format!(
                            "'{rule}': a rule starts with + or - (e.g. +@read, -flushall)"
                        ))
                    }
                },
            };
            if let Some(category) = target.strip_prefix('@') {
                compiled
                    .apply_category(category, allow)
                    .map_err(|e| format!("'{rule}': {e}"))?;
            } else {
                compiled
                    .apply_command(target, allow)
                    .map_err(|e| format!("'{rule}': {e}"))?;
            }
        }
        Ok(compiled)
    }

    /// The rules as Redis's ACL LIST shows them: from `-@all`, left to right.
    pub fn describe(&self) -> String {
        let text = &*self.text;
        let lower = text.to_ascii_lowercase();
        let absolute = ["+@all", "-@all", "allcommands", "nocommands"]
            .iter()
            .any(|start| lower.starts_with(start));
        match text {
            "" => "-@all".to_string(),
            _ if absolute => text.to_string(),
            _ => format!("-@all {text}"),
        }
    }

    fn set(&mut self, id: CommandId, allow: bool) {
        if let Some(slot) = self.allowed.get_mut(usize::from(id.0)) {
            *slot = allow;
        }
    }

    fn apply_category(&mut self, category: &str, allow: bool) -> Result<(), String> {
        if category == "all" {
            self.allowed.iter_mut().for_each(|a| *a = allow);
            self.unknown = allow;
            return Ok(());
        }
        let flag = AclCategories::from_name(category)
            .ok_or_else(|| format!("unknown category '@{category}'"))?;
        for command in commands() {
            for spec in std::iter::once(command).chain(command.subcommands()) {
                if spec.acl_categories().contains(flag) {
                    if let Some(id) = id_of(spec.name()) {
                        self.set(id, allow);
                    }
                }
            }
        }
        Ok(())
    }

    fn apply_command(&mut self, name: &str, allow: bool) -> Result<(), String> {
        let id = id_of(name).ok_or_else(|| format!("unknown command '{name}'"))?;
        self.set(id, allow);
        // A container command covers its subcommands.
        if let Some(spec) = id.spec() {
            for sub in spec.subcommands() {
                if let Some(sub_id) = id_of(sub.name()) {
                    self.set(sub_id, allow);
                }
            }
        }
        Ok(())
    }

    /// Whether the command `id` (None: not in the table) may run.
    #[inline]
    pub fn allows(&self, id: Option<CommandId>) -> bool {
        match id {
            Some(id) => self
                .allowed
                .get(usize::from(id.0))
                .copied()
                .unwrap_or(false),
            None => self.unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(rules: &CommandRules, name: &str) -> bool {
        rules.allows(Some(id_of(name).expect(name)))
    }

    #[test]
    fn categories_and_commands_apply_in_order() {
        let rules = CommandRules::parse("+@read -keys +set").expect("rules");
        assert!(allows(&rules, "get"));
        assert!(allows(&rules, "set"));
        assert!(!allows(&rules, "keys"));
        assert!(!allows(&rules, "del"));
        assert!(!rules.allows(None));
        let rules = CommandRules::parse("+@all -@dangerous").expect("rules");
        assert!(allows(&rules, "get"));
        assert!(!allows(&rules, "flushall"));
        assert!(rules.allows(None));
        let rules = CommandRules::parse("allcommands -config +config|get").expect("rules");
        assert!(allows(&rules, "config|get"));
        assert!(!allows(&rules, "config|set"));
    }

    #[test]
    fn bad_rules_are_named() {
        assert!(CommandRules::parse("+@nosuch")
            .expect_err("bad")
            .contains("@nosuch"));
        assert!(CommandRules::parse("get")
            .expect_err("bad")
            .contains("'get'"));
        assert!(CommandRules::parse("+nosuchcommand")
            .expect_err("bad")
            .contains("nosuchcommand"));
    }
}
