# A Lambda-style Python handler: handler(event, context).
import platform


def handler(event, context):
    name = (event or {}).get("name", "world")
    print(f"greeting {name}")  # prints become the invocation's logs
    return {
        "message": f"Hello, {name}!",
        "python": platform.python_version(),
        "request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
