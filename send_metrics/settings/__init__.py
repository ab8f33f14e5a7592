"""The settings: what a run reads before its child starts (`early`), the operator's config
(`config`), where our files live (`files`), and where events go (`destination`)."""
