"""Settings every tgm process reads alike: which deployment this is (APP_ENV) and what production refuses."""
