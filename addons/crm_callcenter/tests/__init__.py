# The module with every module it has a bridge to, in this order: one
# database (the cache key is the list) for test_module.py and every
# bridge test; each other list costs a database created from scratch
WITH_EXTRAS = ['crm_callcenter', 'crm_helpdesk', 'crm_marketing']
