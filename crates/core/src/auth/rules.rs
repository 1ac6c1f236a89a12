//! Which commands a user may run: Redis ACL-style rules (`+@read`,
//! `-@dangerous`, `+get`, `-config|set`, `allcommands`, `nocommands`)
//! compiled into one flag per command of the table.

use crate::command::{commands, id_of, AclCategories, CommandId};

/// A rule that does not parse, named as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("'{0}': a rule starts with + or - (e.g. +@read, -flushall)")]
    NoSign(String),
    #[error("'{rule}': unknown category '@{category}'")]
    UnknownCategory { rule: String, category: String },
    #[error("'{rule}': unknown command '{command}'")]
    UnknownCommand { rule: String, command: String },
}

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
    pub fn parse(rules: &str) -> Result<CommandRules, RuleError> {
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
                    _ => return Err(RuleError::NoSign(rule.to_string())),
                },
            };
            if let Some(category) = target.strip_prefix('@') {
                if !compiled.apply_category(category, allow) {
                    return Err(RuleError::UnknownCategory {
                        rule: rule.to_string(),
                        category: category.to_string(),
                    });
                }
            } else if !compiled.apply_command(target, allow) {
                return Err(RuleError::UnknownCommand {
                    rule: rule.to_string(),
                    command: target.to_string(),
                });
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

    /// Allows or denies a category's commands; false if there is no such
    /// category.
    fn apply_category(&mut self, category: &str, allow: bool) -> bool {
        if category == "all" {
            self.allowed.iter_mut().for_each(|a| *a = allow);
            self.unknown = allow;
            return true;
        }
        let Some(flag) = AclCategories::from_name(category) else {
            return false;
        };
        for command in commands() {
            for spec in std::iter::once(command).chain(command.subcommands()) {
                if spec.acl_categories().contains(flag) {
                    if let Some(id) = id_of(spec.name()) {
                        self.set(id, allow);
                    }
                }
            }
        }
        true
    }

    /// Allows or denies a command and its subcommands; false if the table
    /// has no such command.
    fn apply_command(&mut self, name: &str, allow: bool) -> bool {
        let Some(id) = id_of(name) else {
            return false;
        };
        self.set(id, allow);
        // A container command covers its subcommands.
        if let Some(spec) = id.spec() {
            for sub in spec.subcommands() {
                if let Some(sub_id) = id_of(sub.name()) {
                    self.set(sub_id, allow);
                }
            }
        }
        true
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
        let error = |rules: &str| CommandRules::parse(rules).expect_err("bad").to_string();
        assert_eq!(error("+@nosuch"), "'+@nosuch': unknown category '@nosuch'");
        assert_eq!(
            error("get"),
            "'get': a rule starts with + or - (e.g. +@read, -flushall)"
        );
        assert_eq!(
            error("+nosuchcommand"),
            "'+nosuchcommand': unknown command 'nosuchcommand'"
        );
    }
}
