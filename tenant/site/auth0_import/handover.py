"""What the end of an import tells the people who run the services."""

from tenant.site.auth0_import.plan import Plan
from tenant.site.auth0_import.services import ImportResult


def service_changes(plan: Plan, result: ImportResult) -> list[str]:
    """The lines that say what each service must change: the domain for
    everyone, and the secret only where Tessera had to make a new one."""
    issuer = plan.tenant.issuer
    lines = [
        "What each service must change:",
        f"  token endpoint: {issuer}oauth/token",
        f"  issuer (iss of the tokens): {issuer}",
        f"  JWKS (for APIs that verify tokens): {issuer}.well-known/jwks.json",
    ]
    if result.kept_secrets:
        lines.append(
            f"  {len(result.kept_secrets)} clients kept their client_id and secret: "
            "nothing else changes for them."
        )
    if result.new_secrets:
        lines.append(
            f"  {len(result.new_secrets)} clients have a new secret (the source did not "
            "reveal theirs; a client the source named without its client_id has a new one "
            "too): hand each its secret from the secrets file."
        )
    for identifier in sorted(result.new_signing_secrets):
        lines.append(f"  API {identifier} (HS256) has a new signing secret: give it to the API.")
    return lines
