"""The server-rendered web UI for clinicians, admins and auditors (Jinja2, no build step)."""
