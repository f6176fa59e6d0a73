//! `init`, `org`, `token` and `user`: administration on the data directory.
//!
//! These commands open the database directly, as the local operator (who
//! holds the files and so has the power of soc-admin); every change is
//! audited as `cli:<user>`.

use crate::config::{Config, CONFIG_FILE, DB_FILE};
use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use mimamori_core::org::OrgProfile;
use mimamori_core::{validate, NewOrg, Org, OrgKind, Role, Scope, Validated};
use mimamori_store::{AuditActor, NewToken, NewUser, PageRequest, Store, StoreError};
use std::path::Path;

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Display name of the root org (the central SOC).
    #[arg(long, default_value = "Central SOC")]
    pub root_name: String,
    /// Slug of the root org.
    #[arg(long, default_value = "soc")]
    pub root_slug: String,
    /// Extra DNS names for the generated TLS certificate (localhost and the
    /// loopback addresses are always included).
    #[arg(long = "tls-name")]
    pub tls_names: Vec<String>,
    /// Print the result as JSON (for scripts).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Show the org tree.
    List,
    /// Show one org as JSON.
    Show { org: String },
    /// Add an org under a parent.
    Add(OrgAddArgs),
    /// Delete a leaf org with its users and tokens.
    Rm { org: String },
}

#[derive(Debug, Args)]
pub struct OrgAddArgs {
    /// Slug or id of the parent org.
    #[arg(long)]
    pub parent: String,
    /// Short handle: a-z, 0-9 and '-'.
    #[arg(long)]
    pub slug: String,
    /// Display name (any language).
    #[arg(long)]
    pub name: String,
    /// `member` or `supervisor`.
    #[arg(long, default_value = "member", value_parser = ["member", "supervisor"])]
    pub kind: String,
    /// Sector, free text used to target advisories and group figures,
    /// e.g. government, health, research, education.
    #[arg(long)]
    pub sector: Option<String>,
    /// Declared network range (CIDR); repeat for several.
    #[arg(long = "network")]
    pub networks: Vec<String>,
    /// Declared domain; repeat for several.
    #[arg(long = "domain")]
    pub domains: Vec<String>,
    /// Print the new org as JSON instead of a sentence.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a token; its secret is printed once.
    Create {
        /// Slug or id of the org the token acts for.
        #[arg(long)]
        org: String,
        /// What the token may do (soc-* roles only at the root org; sensor
        /// sends telemetry; dns-client selects its org's DNS policy over
        /// DoH).
        #[arg(long, value_parser = role_names(|_| true))]
        role: String,
        /// What the token is for.
        #[arg(long)]
        name: String,
        /// Expire after this many days (default: never).
        #[arg(long)]
        expires_in_days: Option<u64>,
        /// Print the token (id, secret, …) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user. The password is read from MIMAMORI_PASSWORD or, if that
    /// is unset, from the first line of standard input.
    Add {
        /// Slug or id of the user's org.
        #[arg(long)]
        org: String,
        /// The name to sign in with (unique within the org).
        #[arg(long)]
        username: String,
        /// What the user may do (soc-* roles only at the root org).
        #[arg(long, value_parser = role_names(Role::for_humans))]
        role: String,
        #[arg(long)]
        email: Option<String>,
        /// Full name, as shown to others.
        #[arg(long)]
        display_name: Option<String>,
    },
    /// List users.
    List,
}

/// The role names `filter` keeps, as clap's possible values (so that help
/// lists every role core defines).
fn role_names(filter: fn(Role) -> bool) -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(
        mimamori_core::role::ALL_ROLES
            .into_iter()
            .filter(|r| filter(*r))
            .map(Role::as_str),
    )
}

pub fn parse_role(s: &str) -> anyhow::Result<Role> {
    Role::parse(s).ok_or_else(|| {
        anyhow!(
            "unknown role {s:?}; expected one of: {}",
            mimamori_core::role::ALL_ROLES
                .map(|r| r.as_str())
                .join(", ")
        )
    })
}

/// Opens the store of an initialized data directory.
pub async fn open_store(data_dir: &Path) -> anyhow::Result<(Config, Store)> {
    let cfg = Config::load(data_dir, None)?;
    let store = open_store_with(data_dir, &cfg).await?;
    Ok((cfg, store))
}

/// Opens the store `cfg` names (for `serve --config`).
pub async fn open_store_with(data_dir: &Path, cfg: &Config) -> anyhow::Result<Store> {
    if cfg.database.url.is_none() && !data_dir.join(DB_FILE).exists() {
        bail!(
            "{} is not an initialized data directory; run `mimamori --data-dir {} init` first",
            data_dir.display(),
            data_dir.display()
        );
    }
    Store::open(&cfg.database_url(data_dir))
        .await
        .context("cannot open the database")
}

pub(crate) async fn root_scope(store: &Store) -> anyhow::Result<(Org, Scope)> {
    let root = store
        .root_org()
        .await?
        .ok_or_else(|| anyhow!("the database has no root org; run `mimamori init`"))?;
    let scope = Scope::Subtree(root.path.clone());
    Ok((root, scope))
}

pub(crate) async fn find_org(store: &Store, scope: &Scope, key: &str) -> anyhow::Result<Org> {
    store.org_find(scope, key).await.map_err(|e| match e {
        StoreError::NotFound => anyhow!("no org with slug or id {key:?} (see `mimamori org list`)"),
        other => other.into(),
    })
}

/// What `init` created, as printed with `--json`.
#[derive(Debug, serde::Serialize)]
pub struct InitReport {
    pub data_dir: String,
    pub root_org_id: String,
    pub admin_token: String,
}

pub async fn init(data_dir: &Path, args: InitArgs) -> anyhow::Result<()> {
    let report = init_data_dir(data_dir, &args.root_slug, &args.root_name, &args.tls_names).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("Initialized {}", report.data_dir);
        println!("  root org:   {} ({})", args.root_name, report.root_org_id);
        println!("  admin token (soc-admin; shown once, keep it safe):");
        println!("    {}", report.admin_token);
        println!("Next: mimamori --data-dir {} serve", data_dir.display());
    }
    Ok(())
}

/// Creates the data directory, config, certificate, root org and first
/// soc-admin token. Refuses an already-initialized directory.
pub async fn init_data_dir(
    data_dir: &Path,
    root_slug: &str,
    root_name: &str,
    tls_names: &[String],
) -> anyhow::Result<InitReport> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    let cfg_path = data_dir.join(CONFIG_FILE);
    if !cfg_path.exists() {
        let text = crate::config::init_template(&crate::config::system_resolvers());
        std::fs::write(&cfg_path, text)
            .with_context(|| format!("cannot write {}", cfg_path.display()))?;
    }
    let cfg = Config::load(data_dir, None)?;
    let slug = validate::slug(root_slug).map_err(|e| anyhow!("--root-slug: {}", e.reason))?;
    let name = validate::display_name("name", root_name)
        .map_err(|e| anyhow!("--root-name: {}", e.reason))?;
    let store = Store::open(&cfg.database_url(data_dir)).await?;
    if store.root_org().await?.is_some() {
        bail!(
            "{} is already initialized (it has a root org); use `mimamori serve`, or choose another --data-dir",
            data_dir.display()
        );
    }
    write_self_signed_cert(data_dir, tls_names)?;
    let actor = AuditActor::local_operator();
    let profile = OrgProfile {
        name,
        sector: Some("government".into()),
        contacts: vec![],
        networks: vec![],
        domains: vec![],
    };
    let root = store.bootstrap_root(&actor, &slug, &profile).await?;
    let issued = store
        .token_issue(
            &actor,
            &root,
            None,
            &NewToken {
                org_id: root.id.to_string(),
                name: "initial admin token (mimamori init)".into(),
                role: Role::SocAdmin,
                expires_in_secs: None,
            },
        )
        .await?;
    store.close().await;
    Ok(InitReport {
        data_dir: data_dir.display().to_string(),
        root_org_id: root.id.to_string(),
        admin_token: issued.secret,
    })
}

fn write_self_signed_cert(data_dir: &Path, extra: &[String]) -> anyhow::Result<()> {
    let dir = data_dir.join("tls");
    std::fs::create_dir_all(&dir)?;
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert_path.exists() && key_path.exists() {
        return Ok(());
    }
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    names.extend(extra.iter().cloned());
    let key = rcgen::KeyPair::generate().context("cannot generate a TLS key")?;
    let params = rcgen::CertificateParams::new(names).context("invalid --tls-name")?;
    let cert = params
        .self_signed(&key)
        .context("cannot sign the TLS certificate")?;
    std::fs::write(&cert_path, cert.pem())?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}

pub async fn org(data_dir: &Path, cmd: OrgCommand) -> anyhow::Result<()> {
    let (_, store) = open_store(data_dir).await?;
    let (_, scope) = root_scope(&store).await?;
    let actor = AuditActor::local_operator();
    match cmd {
        OrgCommand::List => {
            for org in store.org_all(&scope).await? {
                let indent = "  ".repeat(org.path.depth().saturating_sub(1));
                println!(
                    "{indent}{} [{}] {}  ({})",
                    org.slug,
                    org.kind.as_str(),
                    org.name,
                    org.id
                );
            }
        }
        OrgCommand::Show { org } => {
            let org = find_org(&store, &scope, &org).await?;
            println!("{}", serde_json::to_string_pretty(&org)?);
        }
        OrgCommand::Add(a) => {
            let parent = find_org(&store, &scope, &a.parent).await?;
            let kind = OrgKind::parse(&a.kind).map_err(|e| anyhow!("--kind: {}", e.reason))?;
            let new = NewOrg {
                slug: a.slug,
                name: a.name,
                parent_id: Some(parent.id.clone()),
                kind: Some(kind),
                sector: a.sector,
                contacts: vec![],
                networks: a.networks,
                domains: a.domains,
            };
            let (slug, profile) = new.validate().map_err(|e| anyhow!("{e}"))?;
            let org = store
                .org_create(&actor, &parent, &slug, kind, &profile)
                .await?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&org)?);
            } else {
                println!(
                    "created org {} ({}) under {}",
                    org.slug, org.id, parent.slug
                );
            }
        }
        OrgCommand::Rm { org } => {
            let org = find_org(&store, &scope, &org).await?;
            store.org_delete(&actor, &org).await?;
            println!("deleted org {}", org.slug);
        }
    }
    Ok(())
}

pub async fn token(data_dir: &Path, cmd: TokenCommand) -> anyhow::Result<()> {
    let (_, store) = open_store(data_dir).await?;
    let (_, scope) = root_scope(&store).await?;
    let actor = AuditActor::local_operator();
    match cmd {
        TokenCommand::Create {
            org,
            role,
            name,
            expires_in_days,
            json,
        } => {
            let org = find_org(&store, &scope, &org).await?;
            let role = parse_role(&role)?;
            let issued = store
                .token_issue(
                    &actor,
                    &org,
                    None,
                    &NewToken {
                        org_id: org.id.to_string(),
                        name,
                        role,
                        expires_in_secs: expires_in_days.map(|d| d.saturating_mul(86_400)),
                    },
                )
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&issued)?);
            } else {
                println!(
                    "token {} ({role} at {}), shown once:",
                    issued.token.id, org.slug
                );
                println!("{}", issued.secret);
            }
        }
        TokenCommand::List => {
            let mut page = PageRequest::first(mimamori_store::MAX_PAGE);
            loop {
                let p = store.token_list(&scope, &page).await?;
                for t in &p.items {
                    let state = if t.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    println!(
                        "{}  {:<18} {:<8} org={} {}",
                        t.id,
                        t.role.as_str(),
                        state,
                        t.org_id,
                        t.name
                    );
                }
                match p.next_cursor {
                    Some(c) => page.after = Some(c),
                    None => break,
                }
            }
        }
        TokenCommand::Revoke { id } => {
            let t = store.token_get(&scope, &id).await.map_err(|e| match e {
                StoreError::NotFound => {
                    anyhow!("no token with id {id:?} (see `mimamori token list`)")
                }
                other => other.into(),
            })?;
            let org = store.org_get(&scope, &t.org_id).await?;
            store.token_revoke(&actor, &org, &t).await?;
            println!("revoked token {id}");
        }
    }
    Ok(())
}

pub async fn user(data_dir: &Path, cmd: UserCommand) -> anyhow::Result<()> {
    let (_, store) = open_store(data_dir).await?;
    let (_, scope) = root_scope(&store).await?;
    match cmd {
        UserCommand::Add {
            org,
            username,
            role,
            email,
            display_name,
        } => {
            let org = find_org(&store, &scope, &org).await?;
            let role = parse_role(&role)?;
            let password = match std::env::var("MIMAMORI_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .context("cannot read the password from standard input")?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            let user = store
                .user_create(
                    &AuditActor::local_operator(),
                    &org,
                    &NewUser {
                        org_id: org.id.to_string(),
                        username,
                        display_name,
                        email,
                        role,
                        password,
                    },
                )
                .await?;
            println!(
                "created user {} ({}) in {}",
                user.username, user.id, org.slug
            );
        }
        UserCommand::List => {
            let mut page = PageRequest::first(mimamori_store::MAX_PAGE);
            loop {
                let p = store.user_list(&scope, &page).await?;
                for u in &p.items {
                    let state = if u.disabled_at.is_some() {
                        "disabled"
                    } else {
                        "active"
                    };
                    println!(
                        "{}  {:<18} {:<8} org={} {}",
                        u.id,
                        u.role.as_str(),
                        state,
                        u.org_id,
                        u.username
                    );
                }
                match p.next_cursor {
                    Some(c) => page.after = Some(c),
                    None => break,
                }
            }
        }
    }
    Ok(())
}
