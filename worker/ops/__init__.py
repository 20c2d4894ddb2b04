"""Op implementations: what each LLB op does on the worker."""
