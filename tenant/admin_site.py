from django.contrib import admin


class TesseraAdminSite(admin.AdminSite):
    """The Tessera dashboard."""

    site_header = "Tessera"
    site_title = "Tessera"
    index_title = "Dashboard"
