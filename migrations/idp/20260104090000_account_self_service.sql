-- Account self-service (issue 17 item 5): a person changes their own password
-- and signs their own sessions out at /account; each change is an audit line.
-- The kind list is the whole set, second-factor kinds included, so this
-- constraint is right whichever of the two migrations ran last.
ALTER TABLE auth_events DROP CONSTRAINT auth_events_kind_check;
ALTER TABLE auth_events ADD CONSTRAINT auth_events_kind_check
    CHECK (kind IN ('login_succeeded', 'login_failed', 'login_locked',
                    'client_auth_failed', 'client_auth_locked',
                    'user_disabled', 'user_enabled', 'user_deleted',
                    'totp_failed', 'totp_enrolled', 'totp_disabled',
                    'recovery_code_used', 'second_factor_reset',
                    'password_changed', 'password_change_failed', 'session_signed_out'));
