"""What the developer reads of their own data: `status` (`reports`) and `stats` (`stats`, with
`stats_text` for the terminal, CSV and JSON, `report_html` for the page of charts)."""
