//! Users, API tokens and authentication.

use crate::audit::{self, AuditActor, AuditRecord};
use crate::secret;
use crate::{Page, PageRequest, Result, Store, StoreError};
use mimamori_core::validate;
use mimamori_core::{
    new_id, now_millis, InvalidInput, Org, OrgId, OrgPath, Principal, Role, Scope, TokenId,
    UnixMillis, UserId,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::Row;
use utoipa::ToSchema;

/// A human user (never with the password hash).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct User {
    pub id: String,
    pub org_id: String,
    pub username: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub role: Role,
    pub created_at: UnixMillis,
    pub disabled_at: Option<UnixMillis>,
}

/// What is needed to create a user.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub org_id: String,
    pub username: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    pub role: Role,
    /// At least 12 characters; stored only as an argon2id hash.
    pub password: String,
}

/// An API token's metadata (never the secret).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenInfo {
    pub id: String,
    pub org_id: String,
    pub user_id: Option<String>,
    pub name: String,
    pub role: Role,
    pub created_at: UnixMillis,
    pub created_by: Option<String>,
    pub expires_at: Option<UnixMillis>,
    pub revoked_at: Option<UnixMillis>,
}

/// What is needed to issue a token.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub org_id: String,
    /// What the token is for, e.g. "fluent-bit on dns01".
    pub name: String,
    pub role: Role,
    /// Lifetime in seconds from now; absent means it does not expire.
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
}

/// A freshly issued token: the secret is shown this once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IssuedToken {
    pub token: TokenInfo,
    /// The bearer secret. It is not stored and cannot be shown again.
    pub secret: String,
}

/// Why a bearer token was refused. The message is safe to show the caller:
/// it says nothing a holder of the token does not already know.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the bearer token is not valid")]
    Unknown,
    #[error("the bearer token was revoked")]
    Revoked,
    #[error("the bearer token expired at {0}")]
    Expired(String),
    #[error("the user this token belongs to is disabled")]
    UserDisabled,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn user_from_row(row: &AnyRow) -> Result<User> {
    let role: String = row.try_get("role")?;
    Ok(User {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        email: row.try_get("email")?,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown role {role:?}")))?,
        created_at: row.try_get("created_at")?,
        disabled_at: row.try_get("disabled_at")?,
    })
}

fn token_from_row(row: &AnyRow) -> Result<TokenInfo> {
    let role: String = row.try_get("role")?;
    Ok(TokenInfo {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown role {role:?}")))?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// Checks that `role` fits `org` (root-only roles at the root).
fn check_role_fits(role: Role, org: &Org) -> Result<()> {
    if role.requires_root() && org.parent_id.is_some() {
        return Err(InvalidInput::new(
            "role",
            format!("role {role} can only be held at the root org (the central SOC)"),
        )
        .into());
    }
    Ok(())
}

/// An argon2 hash of a random password, verified against when a login
/// names an unknown user so that the response time does not reveal which
/// users exist. Computed once, on first use.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        let random = secret::generate_token().unwrap_or_else(|_| "fallback".into());
        secret::hash_password(&random).unwrap_or_default()
    })
}

impl Store {
    /// Creates a user in `org` (already checked to be in the caller's scope).
    pub async fn user_create(&self, actor: &AuditActor, org: &Org, new: &NewUser) -> Result<User> {
        let username = validate::username(&new.username)?;
        if !new.role.for_humans() {
            let role = new.role;
            return Err(InvalidInput::new(
                "role",
                format!("{role} is a machine role: issue a {role} token instead of a user"),
            )
            .into());
        }
        check_role_fits(new.role, org)?;
        validate::password(&new.password)?;
        let display_name =
            validate::optional_text("display_name", new.display_name.as_deref(), 200)?;
        let email = new
            .email
            .as_deref()
            .map(|e| validate::email("email", e))
            .transpose()?;
        let hash = secret::hash_password(&new.password).map_err(StoreError::Corrupt)?;
        let user = User {
            id: new_id(),
            org_id: org.id.to_string(),
            username,
            display_name,
            email,
            role: new.role,
            created_at: now_millis(),
            disabled_at: None,
        };
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO users (id, org_id, username, display_name, email, role, password_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&user.id)
        .bind(&user.org_id)
        .bind(&user.username)
        .bind(user.display_name.as_deref())
        .bind(user.email.as_deref())
        .bind(user.role.as_str())
        .bind(&hash)
        .bind(user.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            StoreError::unique(e, || {
                format!("org {} already has a user named {:?}", org.slug, user.username)
            })
        })?;
        audit::write(
            &mut tx,
            actor,
            AuditRecord {
                org_id: org.id.as_str(),
                org_path: &org.path,
                action: "user.create",
                target_type: "user",
                target_id: Some(&user.id),
                detail: json!({"username": user.username, "role": user.role}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(user)
    }

    /// One user, if in `scope`.
    pub async fn user_get(&self, scope: &Scope, id: &str) -> Result<User> {
        let (pred, bound) = scope.sql_predicate("o.path", 2);
        let row = sqlx::query(&format!(
            "SELECT u.* FROM users u JOIN orgs o ON o.id = u.org_id WHERE u.id = $1 AND {pred}"
        ))
        .bind(id)
        .bind(bound)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref()
            .map(user_from_row)
            .transpose()?
            .ok_or(StoreError::NotFound)
    }

    /// Users of orgs in `scope`.
    pub async fn user_list(&self, scope: &Scope, page: &PageRequest) -> Result<Page<User>> {
        let (pred, bound) = scope.sql_predicate("o.path", 1);
        let rows = sqlx::query(&format!(
            "SELECT u.* FROM users u JOIN orgs o ON o.id = u.org_id WHERE {pred} AND u.id > $2 ORDER BY u.id LIMIT $3"
        ))
        .bind(bound)
        .bind(page.after.as_deref().unwrap_or(""))
        .bind(page.limit() + 1)
        .fetch_all(&self.pool)
        .await?;
        let items = rows.iter().map(user_from_row).collect::<Result<Vec<_>>>()?;
        Ok(page.finish(items, |u| &u.id))
    }

    /// Disables a user and revokes every token they hold.
    pub async fn user_disable(&self, actor: &AuditActor, org: &Org, user: &User) -> Result<User> {
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE users SET disabled_at = $1 WHERE id = $2 AND disabled_at IS NULL")
            .bind(now)
            .bind(&user.id)
            .execute(&mut *tx)
            .await?;
        let revoked = sqlx::query(
            "UPDATE tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(&user.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        audit::write(
            &mut tx,
            actor,
            AuditRecord {
                org_id: org.id.as_str(),
                org_path: &org.path,
                action: "user.disable",
                target_type: "user",
                target_id: Some(&user.id),
                detail: json!({"username": user.username, "tokens_revoked": revoked}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(User {
            disabled_at: user.disabled_at.or(Some(now)),
            ..user.clone()
        })
    }

    /// Issues a token for `org` (already checked to be in the caller's scope
    /// and the role to be grantable by the caller).
    pub async fn token_issue(
        &self,
        actor: &AuditActor,
        org: &Org,
        user_id: Option<&UserId>,
        new: &NewToken,
    ) -> Result<IssuedToken> {
        let name = validate::display_name("name", &new.name)?;
        check_role_fits(new.role, org)?;
        let now = now_millis();
        let expires_at = match new.expires_in_secs {
            None => None,
            Some(0) => {
                return Err(InvalidInput::new("expires_in_secs", "must be at least 1").into())
            }
            Some(s) => {
                let ms = i64::try_from(s)
                    .ok()
                    .and_then(|s| s.checked_mul(1000))
                    .and_then(|ms| ms.checked_add(now))
                    .ok_or_else(|| InvalidInput::new("expires_in_secs", "is too large"))?;
                Some(ms)
            }
        };
        let secret = secret::generate_token()
            .map_err(|e| StoreError::Corrupt(format!("no randomness: {e}")))?;
        let token = TokenInfo {
            id: new_id(),
            org_id: org.id.to_string(),
            user_id: user_id.map(|u| u.to_string()),
            name,
            role: new.role,
            created_at: now,
            created_by: Some(actor.actor.clone()),
            expires_at,
            revoked_at: None,
        };
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO tokens (id, org_id, user_id, name, role, secret_hash, created_at, created_by, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&token.id)
        .bind(&token.org_id)
        .bind(token.user_id.as_deref())
        .bind(&token.name)
        .bind(token.role.as_str())
        .bind(secret::hash_token(&secret))
        .bind(token.created_at)
        .bind(token.created_by.as_deref())
        .bind(token.expires_at)
        .execute(&mut *tx)
        .await?;
        audit::write(
            &mut tx,
            actor,
            AuditRecord {
                org_id: org.id.as_str(),
                org_path: &org.path,
                action: "token.issue",
                target_type: "token",
                target_id: Some(&token.id),
                detail: json!({"name": token.name, "role": token.role, "user_id": token.user_id, "expires_at": token.expires_at}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(IssuedToken { token, secret })
    }

    /// One token's metadata, if in `scope`.
    pub async fn token_get(&self, scope: &Scope, id: &str) -> Result<TokenInfo> {
        let (pred, bound) = scope.sql_predicate("o.path", 2);
        let row = sqlx::query(&format!(
            "SELECT t.* FROM tokens t JOIN orgs o ON o.id = t.org_id WHERE t.id = $1 AND {pred}"
        ))
        .bind(id)
        .bind(bound)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref()
            .map(token_from_row)
            .transpose()?
            .ok_or(StoreError::NotFound)
    }

    /// Tokens of orgs in `scope`.
    pub async fn token_list(&self, scope: &Scope, page: &PageRequest) -> Result<Page<TokenInfo>> {
        let (pred, bound) = scope.sql_predicate("o.path", 1);
        let rows = sqlx::query(&format!(
            "SELECT t.* FROM tokens t JOIN orgs o ON o.id = t.org_id WHERE {pred} AND t.id > $2 ORDER BY t.id LIMIT $3"
        ))
        .bind(bound)
        .bind(page.after.as_deref().unwrap_or(""))
        .bind(page.limit() + 1)
        .fetch_all(&self.pool)
        .await?;
        let items = rows
            .iter()
            .map(token_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(page.finish(items, |t| &t.id))
    }

    /// Revokes a token (idempotent: revoking twice keeps the first time).
    pub async fn token_revoke(
        &self,
        actor: &AuditActor,
        org: &Org,
        token: &TokenInfo,
    ) -> Result<TokenInfo> {
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(&token.id)
            .execute(&mut *tx)
            .await?;
        audit::write(
            &mut tx,
            actor,
            AuditRecord {
                org_id: org.id.as_str(),
                org_path: &org.path,
                action: "token.revoke",
                target_type: "token",
                target_id: Some(&token.id),
                detail: json!({"name": token.name}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(TokenInfo {
            revoked_at: token.revoked_at.or(Some(now)),
            ..token.clone()
        })
    }

    /// Resolves a bearer secret to the principal it stands for.
    /// Unscoped by nature: this is how a scope is found in the first place.
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal, AuthError> {
        if !bearer.starts_with(secret::TOKEN_PREFIX) || bearer.len() > 200 {
            return Err(AuthError::Unknown);
        }
        let row = sqlx::query(
            "SELECT t.id, t.user_id, t.org_id, t.role, t.expires_at, t.revoked_at, o.path, u.disabled_at \
             FROM tokens t JOIN orgs o ON o.id = t.org_id LEFT JOIN users u ON u.id = t.user_id \
             WHERE t.secret_hash = $1",
        )
        .bind(secret::hash_token(bearer))
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::from)?
        .ok_or(AuthError::Unknown)?;
        let get = |e: sqlx::Error| AuthError::Store(e.into());
        let revoked: Option<i64> = row.try_get("revoked_at").map_err(get)?;
        if revoked.is_some() {
            return Err(AuthError::Revoked);
        }
        let expires: Option<i64> = row.try_get("expires_at").map_err(get)?;
        if let Some(exp) = expires {
            if exp <= now_millis() {
                return Err(AuthError::Expired(mimamori_core::millis_to_rfc3339(exp)));
            }
        }
        let disabled: Option<i64> = row.try_get("disabled_at").map_err(get)?;
        if disabled.is_some() {
            return Err(AuthError::UserDisabled);
        }
        let role: String = row.try_get("role").map_err(get)?;
        let user_id: Option<String> = row.try_get("user_id").map_err(get)?;
        Ok(Principal {
            token_id: TokenId(row.try_get("id").map_err(get)?),
            user_id: user_id.map(UserId),
            org_id: OrgId(row.try_get("org_id").map_err(get)?),
            org_path: OrgPath(row.try_get("path").map_err(get)?),
            role: Role::parse(&role)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown role {role:?}")))?,
        })
    }

    /// Audits that logins to `username` of `org_slug` (or from the
    /// actor's address) are refused for a while after repeated failures:
    /// in the user's org when it exists, else in the root org.
    pub async fn login_locked(
        &self,
        actor: &AuditActor,
        org_slug: &str,
        username: &str,
        what: &str,
        retry_after_secs: u64,
    ) -> Result<()> {
        let everything = Scope::Subtree(OrgPath(String::from("/")));
        let org = match self.org_find(&everything, org_slug).await {
            Ok(o) => o,
            Err(StoreError::NotFound) => {
                let all = self.org_all(&everything).await?;
                match all.into_iter().find(|o| o.parent_id.is_none()) {
                    Some(root) => root,
                    None => return Ok(()),
                }
            }
            Err(e) => return Err(e),
        };
        self.audit_standalone(
            actor,
            org.id.as_str(),
            &org.path,
            "auth.login_locked",
            json!({"username": username, "org": org_slug, "locked": what, "retry_after_secs": retry_after_secs}),
        )
        .await
    }

    /// Checks a user's password and, if right, issues a session token that
    /// expires after `lifetime_secs`. Every attempt on an existing user is
    /// audited in that user's org; attempts naming an unknown org or user
    /// have no org to file them under and are logged instead. Returns
    /// `None` for any failure (unknown org, unknown user, wrong password,
    /// disabled user) so the caller cannot tell which.
    pub async fn login(
        &self,
        actor: &AuditActor,
        org_slug: &str,
        username: &str,
        password: &str,
        lifetime_secs: u64,
    ) -> Result<Option<IssuedToken>> {
        if password.len() > 1024 {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT u.*, o.path AS org_path FROM users u JOIN orgs o ON o.id = u.org_id WHERE o.slug = $1 AND u.username = $2",
        )
        .bind(org_slug)
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            tracing::info!(org = org_slug, username, remote = ?actor.remote_addr, "login for an unknown org or user");
            // Spend the same time as a real check.
            let _ = secret::verify_password(password, dummy_hash());
            return Ok(None);
        };
        let user = user_from_row(&row)?;
        let hash: String = row.try_get("password_hash")?;
        let org_path = OrgPath(row.try_get("org_path")?);
        let ok = secret::verify_password(password, &hash) && user.disabled_at.is_none();
        if !ok {
            self.audit_standalone(
                actor,
                &user.org_id,
                &org_path,
                "auth.login_failed",
                json!({"username": user.username}),
            )
            .await?;
            return Ok(None);
        }
        let org = self.org_get(&Scope::Only(org_path), &user.org_id).await?;
        let user_actor = AuditActor {
            actor: format!("user:{}", user.id),
            role: Some(user.role.as_str().into()),
            org_id: Some(user.org_id.clone()),
            remote_addr: actor.remote_addr.clone(),
        };
        let issued = self
            .token_issue(
                &user_actor,
                &org,
                Some(&UserId(user.id.clone())),
                &NewToken {
                    org_id: user.org_id.clone(),
                    name: format!("session for {}", user.username),
                    role: user.role,
                    expires_in_secs: Some(lifetime_secs),
                },
            )
            .await?;
        Ok(Some(issued))
    }
}
