"""crudkit's admin panel: sqladmin over every registered resource, with the API's permissions,
and the history of every change.

Add `crudkit.contrib.admin` (after `crudkit.contrib.auth`) to `installed_apps`;
the panel is mounted at the `admin_path` setting (default `/admin`).

    apps.py         AdminConfig: the history's write hook, and the panel once the app is built
    models.py       LogEntry: the history table, `crudkit_log_entry`
    resources.py    the history's resource (read-only, admin only)
    history.py      the write hook recording every create, update and delete
    site.py         CrudkitAdmin (sqladmin's Admin) and install_admin()
    dashboard.py    the index page: apps and models grouped, recent actions
    views.py        ResourceView: one sqladmin ModelView per Resource
    options.py      a Resource's declarative options as sqladmin's view options
    writes.py       saves in one transaction, with their history and version check
    lookups.py      foreign keys as searchable selects, scoped by the target's policy
    counting.py     list counts that stay cheap on large tables
    history_view.py the read-only History list, and a row's History page
    users.py        UserView: passwords hashed on save, privileges for superusers
    auth.py         StaffAuthentication: staff login, sessions tied to token_version
    permissions.py  AdminPolicy / ResourceAuthorization: the resources' permissions
    csrf.py         per-session CSRF tokens and the origin check
    forms.py        AdminForm: the CSRF field, the row version, per-user fields
    filters.py      list filters parsed by crudkit's FilterSet
    errors.py       failed saves as form messages, database errors in the API's words
    exports.py      CSV and JSON exports with formula-leading text quoted
    error_pages.py  403 and 404 inside the admin; 500 and 503 pages for what no view handled
    context.py      the admin request in progress, for forms
    migrations/     the history table's migrations
    templates/      small overrides of sqladmin's templates, and crudkit's pages
    statics/        the CSRF token for the pages' own requests; the dark/light theme;
                    local times, pinned list columns, the icon
"""
