# ruff: noqa: F821  (data, tool, pmap, done, ... are the sandbox's builtins)
# The tool takes the id as a string: pass it as one. An id the database does not know raises
# ToolError in the program; keep it as "unknown" and go on.
def lookup(customer_id):
    try:
        return tool.lookup_customer(str(customer_id))
    except ToolError as exc:
        print("lookup", customer_id, "failed:", exc)
        return None


found = pmap(lookup, ids)
customers = []
unknown = []
for customer_id, customer in zip(ids, found, strict=True):
    if customer is None:
        unknown.append(str(customer_id))
        continue
    customers.append({
        "id": customer["id"],
        "name": customer["name"],
        "plan": customer["plan"],
        "failures": counts[customer_id],
        "reasons": sorted(reasons[customer_id]),
        "notified": None,
    })


def notify(customer):
    message = (
        f"{customer['name']} ({customer['id']}) had {customer['failures']} failed payment(s): "
        + ", ".join(customer["reasons"])
    )
    sent = tool.notify_account_manager(customer["id"], message, priority="urgent")
    return sent["notification_id"]


enterprise = [c for c in customers if c["plan"] == "enterprise"]
for customer, sent in zip(enterprise, pmap(notify, enterprise), strict=True):
    customer["notified"] = None if isinstance(sent, Failure) else sent
print("notified:", [(c["name"], c["notified"]) for c in enterprise], "unknown:", unknown)
done({"customers": customers, "unknown": unknown})
