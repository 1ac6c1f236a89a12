//! ACL through the proxy: the proxy's own users (from its configuration),
//! shown the way Redis shows its ACL users. Reading subcommands are
//! answered here; changing ones are refused, since users live in the
//! proxy's configuration (and ACL changes sent to the servers would
//! change the servers' users, which the proxy logs in as).

use bytes::{Bytes, BytesMut};
use resp::Request;
use sha2::{Digest, Sha256};

use super::super::reply;
use super::super::{ClientStream, Flow, Session};
use super::{subcommand, Subcommand};
use crate::auth::User;
use crate::command::{commands, AclCategories, CommandSpec, Resolution};
use crate::error::CommandError;

impl<S: ClientStream> Session<S> {
    /// ACL and its subcommands (arity checked by the dispatcher).
    pub(super) fn acl(&mut self, request: &Request, resolution: &Resolution) -> Flow {
        let reply = match subcommand(request, resolution) {
            Subcommand::Known("whoami") => Ok(reply::bulk(
                self.client.user.as_ref().map_or("default", |u| &u.name).as_bytes(),
            )),
            Subcommand::Known("users") => Ok(self.acl_users()),
            Subcommand::Known("list") => Ok(self.acl_list()),
            Subcommand::Known("getuser") => Ok(self.acl_getuser(request.arg(2).unwrap_or_default())),
            Subcommand::Known("cat") => acl_cat(request.arg(2)),
            Subcommand::Known("genpass") => acl_genpass(request.arg(2)),
            Subcommand::Known("dryrun") => self.acl_dryrun(request),
            Subcommand::Known("log") => match request.arg(2) {
                None => Ok(Bytes::from_static(b"*0\r\n")),
                Some(arg) if arg.eq_ignore_ascii_case(b"RESET") => Ok(reply::OK),
                Some(arg) => match resp::string2ll(arg) {
                    Some(_) => Ok(Bytes::from_static(b"*0\r\n")),
                    None => Err(CommandError::NotAnInteger),
                },
            },
            Subcommand::Known("help") => Ok(help()),
            Subcommand::Known(sub) => Err(CommandError::NotThroughProxy {
                command: "acl",
                subcommand: sub.to_string(),
                why: "is not supported through the proxy: its users come from the proxy's configuration (users:); the servers' own users are managed on the servers",
            }),
            Subcommand::Unknown(sub) => Err(CommandError::unknown_subcommand("acl", sub)),
        };
        self.answer(reply)
    }

    fn sorted_users(&self) -> Vec<std::sync::Arc<User>> {
        let mut users: Vec<_> = self.pool.state.users().all().cloned().collect();
        users.sort_by(|a, b| a.name.cmp(&b.name));
        users
    }

    fn acl_users(&self) -> Bytes {
        let users = self.sorted_users();
        let mut out = BytesMut::new();
        resp::encode::array_header(&mut out, users.len());
        for user in users {
            resp::encode::bulk(&mut out, user.name.as_bytes());
        }
        out.freeze()
    }

    fn acl_list(&self) -> Bytes {
        let users = self.sorted_users();
        let mut out = BytesMut::new();
        resp::encode::array_header(&mut out, users.len());
        for user in users {
            let d = self.describe(&user);
            let mut line = format!("user {} {}", user.name, d.flags.join(" "));
            for hash in &d.passwords {
                line.push_str(&format!(" #{hash}"));
            }
            line.push_str(&format!(" {}", d.keys));
            if d.channels == "&*" {
                line.push_str(" &*");
            } else {
                line.push_str(" resetchannels");
            }
            line.push_str(&format!(" {}", d.commands));
            resp::encode::bulk(&mut out, line.as_bytes());
        }
        out.freeze()
    }

    fn acl_getuser(&self, name: &[u8]) -> Bytes {
        let users = self.pool.state.users();
        let Some(user) = users.get(name) else {
            return Bytes::from_static(if self.client.resp3 {
                b"_\r\n"
            } else {
                b"$-1\r\n"
            });
        };
        let d = self.describe(user);
        let resp3 = self.client.resp3;
        let mut out = BytesMut::new();
        if resp3 {
            resp::encode::map_header(&mut out, 6);
        } else {
            resp::encode::array_header(&mut out, 12);
        }
        resp::encode::bulk(&mut out, b"flags");
        if resp3 {
            out.extend_from_slice(format!("~{}\r\n", d.flags.len()).as_bytes());
        } else {
            resp::encode::array_header(&mut out, d.flags.len());
        }
        for flag in &d.flags {
            resp::encode::bulk(&mut out, flag.as_bytes());
        }
        resp::encode::bulk(&mut out, b"passwords");
        resp::encode::array_header(&mut out, d.passwords.len());
        for hash in &d.passwords {
            resp::encode::bulk(&mut out, hash.as_bytes());
        }
        for (field, value) in [
            ("commands", &d.commands),
            ("keys", &d.keys),
            ("channels", &d.channels),
        ] {
            resp::encode::bulk(&mut out, field.as_bytes());
            resp::encode::bulk(&mut out, value.as_bytes());
        }
        resp::encode::bulk(&mut out, b"selectors");
        resp::encode::array_header(&mut out, 0);
        out.freeze()
    }

    /// ACL DRYRUN user command [arg...]: whether the user may run it.
    fn acl_dryrun(&self, request: &Request) -> Result<Bytes, CommandError> {
        let name = request.arg(2).unwrap_or_default();
        let users = self.pool.state.users();
        let Some(user) = users.get(name) else {
            return Err(CommandError::NotFound {
                what: "User",
                name: String::from_utf8_lossy(name).into_owned(),
            });
        };
        let args: Vec<&[u8]> = request.args().skip(3).collect();
        let resolution = crate::command::resolve(&args);
        let Some(spec) = resolution.spec() else {
            return Err(CommandError::NotFound {
                what: "Command",
                name: String::from_utf8_lossy(args.first().copied().unwrap_or_default())
                    .into_owned(),
            });
        };
        let id = match resolution {
            crate::command::Resolution::Known(id, _) => Some(id),
            _ => None,
        };
        if !spec.arity_ok(args.len()) {
            return Err(CommandError::Arity(spec.name()));
        }
        if !user.commands.allows(id) {
            return Ok(reply::bulk(
                format!(
                    "This user has no permissions to run the '{}' command",
                    spec.name()
                )
                .as_bytes(),
            ));
        }
        let mut keys = Vec::new();
        spec.keys(&args, &mut keys);
        let denied = keys
            .iter()
            .map(|&i| args.get(i).copied().unwrap_or_default())
            .find(|key| !user.may_access(key));
        if let Some(key) = denied {
            return Ok(reply::bulk(
                format!(
                    "This user has no permissions to access the '{}' key",
                    String::from_utf8_lossy(key)
                )
                .as_bytes(),
            ));
        }
        Ok(Bytes::from_static(b"+OK\r\n"))
    }

    /// A user as ACL LIST / GETUSER show it; passwords as SHA-256 hashes.
    fn describe(&self, user: &User) -> Described {
        let users = self.pool.state.users();
        let enabled = users.is_enabled(user);
        let password = user.password().filter(|_| enabled);
        let mut flags = vec![if enabled { "on" } else { "off" }];
        if password.is_none() && enabled {
            flags.push("nopass");
        }
        let passwords = password
            .map(|p| hex(&Sha256::digest(p.expose().as_bytes())))
            .into_iter()
            .collect();
        let keys = match &user.keys {
            None => "~*".to_string(),
            Some(patterns) => patterns
                .iter()
                .map(|p| format!("~{}", String::from_utf8_lossy(p)))
                .collect::<Vec<_>>()
                .join(" "),
        };
        Described {
            flags,
            passwords,
            commands: if enabled {
                user.commands.describe()
            } else {
                "-@all".to_string()
            },
            keys,
            // The proxy does not restrict channels.
            channels: "&*".to_string(),
        }
    }
}

struct Described {
    flags: Vec<&'static str>,
    passwords: Vec<String>,
    commands: String,
    keys: String,
    channels: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// ACL CAT: the categories, or the commands (and subcommands) in one.
fn acl_cat(category: Option<&[u8]>) -> Result<Bytes, CommandError> {
    let mut out = BytesMut::new();
    let Some(category) = category else {
        let names: Vec<&str> = AclCategories::all_names().collect();
        resp::encode::array_header(&mut out, names.len());
        for name in names {
            resp::encode::bulk(&mut out, name.as_bytes());
        }
        return Ok(out.freeze());
    };
    let name = String::from_utf8_lossy(category).to_ascii_lowercase();
    let Some(flag) = AclCategories::from_name(&name) else {
        return Err(CommandError::UnknownCategory(
            String::from_utf8_lossy(category).into_owned(),
        ));
    };
    let in_category: Vec<&CommandSpec> = commands()
        .iter()
        .flat_map(|c| std::iter::once(c).chain(c.subcommands()))
        .filter(|spec| spec.acl_categories().contains(flag))
        .collect();
    resp::encode::array_header(&mut out, in_category.len());
    for spec in in_category {
        resp::encode::bulk(&mut out, spec.name().as_bytes());
    }
    Ok(out.freeze())
}

/// ACL GENPASS [bits]: random hex from the system's secure source.
fn acl_genpass(bits: Option<&[u8]>) -> Result<Bytes, CommandError> {
    const WRONG: &str = "ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096";
    let bits: usize = match bits {
        None => 256,
        Some(arg) => match std::str::from_utf8(arg)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
        {
            Some(n @ 1..=4096) => n as usize,
            Some(_) => return Err(CommandError::Invalid(WRONG)),
            None => return Err(CommandError::NotAnInteger),
        },
    };
    let chars = bits.div_ceil(4);
    let mut random = vec![0u8; chars.div_ceil(2)];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .map_err(|e| CommandError::NoRandom(e.to_string()))?;
    let mut text = hex(&random);
    text.truncate(chars);
    Ok(reply::bulk(text.as_bytes()))
}

fn help() -> Bytes {
    let lines = [
        "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CAT [<category>]",
        "    List all commands that belong to <category>, or all command categories",
        "    when no category is specified.",
        "DRYRUN <username> <command> [<arg> ...]",
        "    Returns whether the user can execute the given command without executing the command.",
        "GETUSER <username>",
        "    Get the user's details.",
        "GENPASS [<bits>]",
        "    Generate a secure 256-bit user password. The optional `bits` argument can",
        "    be used to specify a different size.",
        "LIST",
        "    Show users details in config file format.",
        "LOG [<count> | RESET]",
        "    Show the ACL log entries (the proxy keeps none).",
        "USERS",
        "    List all the registered usernames.",
        "WHOAMI",
        "    Return the current connection username.",
        "HELP",
        "    Prints this help.",
        "Users are defined in the proxy's configuration (users:); SETUSER, DELUSER,",
        "LOAD and SAVE are not available through the proxy.",
    ];
    reply::help(&lines)
}
