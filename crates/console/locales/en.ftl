# mimamori console — English. Every id here must also be in ja.ftl (a test checks).

## Pages
page-overview = Overview
page-alerts = Alerts
page-alert = Alert
page-campaigns = Campaigns
page-campaign = Campaign
page-audit = Audit log

## Shell
skip-to-content = Skip to content
nav-label = Main
signed-in-as = { $role } at { $org }
scope-subtree = sees the sub-tree of
scope-only = sees only
times-in = Times in
sign-out = Sign out

## Sign-in
sign-in-title = Sign in
sign-in-password = With your user name and password
sign-in-token = With an API token
sign-in = Sign in
field-org = Organisation (slug)
field-username = User name
field-password = Password
field-token = Token
sign-in-failed = Wrong organisation, user name or password.
sign-in-token-failed = That token is not valid (unknown, revoked or expired).
sign-in-role-refused = That token's role cannot use the console (sensors and DNS clients cannot).
session-expired = Your session ended. Sign in again.

## Errors
error-title = Something went wrong
error-not-found-title = Not found
error-not-found = There is nothing here, or it is not in your scope.
error-forbidden-title = Not allowed
error-forbidden = Your role does not allow this page.
error-bad-request-title = That did not work
error-bad-status = That is not an alert status.
error-csrf = The form was stale or came from another site. Reload the page and try again.
back-to-overview = Back to the overview

## Overview
overview-totals = Totals
overview-open-alerts = open alerts
overview-new-alerts = new, not yet looked at
overview-urgent = open, high or critical
overview-campaigns = campaigns
overview-all-alerts = alerts in all
overview-timeline = Alerts first seen, last { $hours } hours
overview-by-org = Open alerts by organisation
overview-no-open = No open alerts.
overview-campaigns-title = Campaigns across organisations

## Severities and statuses
severity-critical = Critical
severity-high = High
severity-medium = Medium
severity-low = Low
severity-informational = Info
status-new = New
status-acknowledged = Acknowledged
status-investigating = Investigating
status-resolved = Resolved
status-false-positive = False positive

## Lists
filters = Filters
any = any
only-open = only open
apply = Apply
clear = Clear
pages = Pages
first-page = First page
next-page = Next page
alerts-none = No alerts match.
in-campaign = campaign
retro = retro-hunt
col-org = Organisation
col-orgs = Organisations
col-severity = Severity
col-status = Status
col-kind = Kind
col-title = Title
col-entity = Entity
col-events = Events
col-alerts = Alerts
col-rule = Rule
col-first-seen = First seen
col-last-seen = Last seen
col-total = Total
col-time = Time
col-actor = Who
col-action = Action
col-target = Target
col-from = From

## Alert detail and workflow
assigned-to = assigned to
workflow = Workflow
action-acknowledge = Acknowledge
action-investigate = Investigate
action-resolve = Resolve
action-false-positive = False positive
action-assign-me = Assign to me
action-unassign = Unassign
comment-add = Add a comment
comment-post = Post comment
comments = Comments
comments-none = No comments yet.
history = History
history-none = No changes yet.
history-status = status { $from } → { $to }
history-assignee = assignee → { $to }
context = Context
matching-events = Matching events

## Campaigns
campaigns-none = No campaigns.
campaign-orgs = { $count ->
    [one] seen at { $count } organisation
   *[other] seen at { $count } organisations
}
campaign-key = Key
campaign-members = Alerts in this campaign

## Hunt
page-hunt = Hunt
hunt-sql = SQL over the event archive (table events, OCSF 1.3 columns)
hunt-help = Only your organisations' events are in the table. Up to 1,000 rows are shown, 10,000 downloaded; a query runs at most 30 s.
hunt-run = Run
hunt-csv = Download CSV
hunt-json = Download JSON
hunt-summary = { $count } rows from { $orgs } organisations in { $ms } ms.
hunt-truncated = (truncated: refine the query or download)

## Intel
page-intel = Intel
page-indicator = Indicator
page-intel-import = Import intel
intel-contains = Value contains
intel-active-only = only active
intel-import = Import
intel-none = No indicators match.
intel-value = Value
intel-confidence = Confidence
intel-owner = Owner
intel-sightings = Sightings
intel-detection = Used for detection and blocking
intel-sources = Sources
intel-tags = Tags
intel-related = Related
intel-sightings-title = Sightings across organisations
intel-no-sightings = Not seen in any of your organisations' telemetry.
intel-sightings-summary = Seen { $count } times, at:
intel-format = Format
intel-format-plain = Plain list (one per line)
intel-default-tlp = TLP for indicators that carry none
intel-source = Source name
intel-file = Read from a file (optional)
intel-document = Document (paste, or choose a file above)
intel-imported = { $count } new, { $updated } updated, { $unchanged } unchanged, { $rejected } rejected.
intel-retro-started = A retro-hunt over the archive started:
intel-rejects = Rejected
intel-unsupported = Not usable
intel-see-list = See the indicators
yes = yes
no = no

## Administration
page-dns = Protective DNS
page-orgs = Organisations
page-users = Users
page-tokens = Tokens
org-kind = Kind
org-sector = Sector
org-networks = Networks
org-domains = Domains
org-open-alerts = open alerts
user-role = Role
user-name = Full name
user-created = Created
user-disabled = disabled
user-active = active
user-disable = Disable
user-add = Add a user
user-password-rule = (at least 12 characters)
token-name = What it is for
token-expires = Expires
token-never = never
token-revoked = revoked
token-revoke = Revoke
token-add = Issue a token
token-days = Valid for days (0: no expiry)
token-issued = Token "{ $name }" issued. Copy it now: it is not stored and cannot be shown again.
dns-help = Per-organisation lists for the Protective DNS resolver. A block applies to the organisation and every organisation beneath it; an allow exempts the organisation from intel and zone blocks, but not from an ancestor's block. Entries cover sub-domains.
dns-none = No allow or block entries.
dns-list = List
dns-allow = allow
dns-block = block
dns-domain = Domain
dns-comment = Why
dns-remove = Remove
dns-add = Add an entry
