namespace Shepherd.Webhooks;

using System.Buffers;
using System.Text;
using System.Text.Json;
using Shepherd.Chat;

/// <summary>
/// A prompt template of a webhook rule: literal text with placeholders. <c>{{ path }}</c> inserts the value at a
/// dotted JSON path of the event (a string as itself, anything else as JSON); <c>{{ json path }}</c> inserts its
/// JSON serialisation (a string quoted). A path that is not there inserts nothing. <c>{{ . }}</c> and
/// <c>{{ json }}</c> address the whole event.
/// </summary>
/// <remarks>Parsed once when the configuration loads (a syntax error is a configuration error); rendering is pure.
/// The rendered text is only ever placed in a request through a JSON writer, so an event cannot inject JSON.</remarks>
public sealed class WebhookTemplate
{
    private readonly Part[] _parts;

    private WebhookTemplate(Part[] parts, string text)
    {
        _parts = parts;
        Text = text;
    }

    /// <summary>The template as written.</summary>
    public string Text { get; }

    /// <summary>Parses a template.</summary>
    /// <param name="error">Why the text is not a template.</param>
    public static WebhookTemplate? TryParse(string text, out string? error)
    {
        var parts = new List<Part>();
        var at = 0;
        while (at < text.Length)
        {
            var open = text.IndexOf("{{", at, StringComparison.Ordinal);
            if (open < 0)
            {
                parts.Add(new Part(text[at..], null, false));
                break;
            }

            if (open > at)
            {
                parts.Add(new Part(text[at..open], null, false));
            }

            var close = text.IndexOf("}}", open + 2, StringComparison.Ordinal);
            if (close < 0)
            {
                error = $"'{{{{' at position {open} is not closed with '}}}}'";
                return null;
            }

            var expression = text.AsSpan(open + 2, close - open - 2).Trim().ToString();
            var json = false;
            if (expression == "json" || expression.StartsWith("json ", StringComparison.Ordinal) || expression.StartsWith("json\t", StringComparison.Ordinal))
            {
                json = true;
                expression = expression[4..].Trim();
            }

            if (expression.Length == 0 && !json)
            {
                error = $"the placeholder at position {open} is empty (use {{{{ path }}}}, {{{{ json path }}}} or {{{{ . }}}})";
                return null;
            }

            if (JsonPath.TryParse(expression, out var path, out var pathError) is false)
            {
                error = $"the placeholder at position {open}: {pathError}";
                return null;
            }

            parts.Add(new Part(null, path, json));
            at = close + 2;
        }

        error = null;
        return new WebhookTemplate([.. parts], text);
    }

    /// <summary>Renders the template for one event.</summary>
    public string Render(JsonElement root)
    {
        var text = new StringBuilder();
        foreach (var part in _parts)
        {
            if (part.Literal is { } literal)
            {
                text.Append(literal);
                continue;
            }

            if (!part.Path!.TryResolve(root, out var value))
            {
                continue;
            }

            if (!part.Json && value.ValueKind == JsonValueKind.String)
            {
                text.Append(value.GetString());
            }
            else
            {
                text.Append(Serialize(value));
            }
        }

        return text.ToString();
    }

    /// <summary>Compact JSON of a value, non-ASCII text kept as itself.</summary>
    public static string Serialize(JsonElement value)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer, JsonDefaults.Writer))
        {
            value.WriteTo(writer);
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private sealed record Part(string? Literal, JsonPath? Path, bool Json);
}

/// <summary>A dotted path into a JSON document: <c>data.items[0].name</c> (or <c>data.items.0.name</c>); <c>.</c> or nothing is the root.</summary>
public sealed class JsonPath
{
    private readonly Segment[] _segments;

    private JsonPath(Segment[] segments, string text)
    {
        _segments = segments;
        Text = text;
    }

    public string Text { get; }

    /// <summary>The whole document.</summary>
    public bool IsRoot => _segments.Length == 0;

    public static bool TryParse(string text, out JsonPath? path, out string? error)
    {
        path = null;
        error = null;
        var trimmed = text.Trim();
        if (trimmed is "" or ".")
        {
            path = new JsonPath([], trimmed);
            return true;
        }

        if (trimmed.Length > 512)
        {
            error = "the path is longer than 512 characters";
            return false;
        }

        var segments = new List<Segment>();
        foreach (var raw in trimmed.Split('.'))
        {
            if (raw.Length == 0)
            {
                error = $"'{trimmed}' has an empty segment (paths look like data.items[0].name)";
                return false;
            }

            var name = raw;
            var bracket = raw.IndexOf('[', StringComparison.Ordinal);
            if (bracket >= 0)
            {
                name = raw[..bracket];
            }

            if (name.Length > 0)
            {
                if (name.Any(c => char.IsWhiteSpace(c) || c is '{' or '}' or ']'))
                {
                    error = $"'{trimmed}' is not a path (paths look like data.items[0].name)";
                    return false;
                }

                segments.Add(int.TryParse(name, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var number)
                    ? new Segment(name, number)
                    : new Segment(name, null));
            }

            var rest = bracket >= 0 ? raw[bracket..] : "";
            while (rest.Length > 0)
            {
                var end = rest.IndexOf(']', StringComparison.Ordinal);
                if (rest[0] != '[' || end < 2 || !int.TryParse(rest.AsSpan(1, end - 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var index))
                {
                    error = $"'{trimmed}' has a malformed index (use items[0])";
                    return false;
                }

                segments.Add(new Segment(null, index));
                rest = rest[(end + 1)..];
            }
        }

        path = new JsonPath([.. segments], trimmed);
        return true;
    }

    /// <summary>The value at this path, if it is there.</summary>
    public bool TryResolve(JsonElement root, out JsonElement value)
    {
        value = root;
        foreach (var segment in _segments)
        {
            if (value.ValueKind == JsonValueKind.Object && segment.Name is { } name && value.TryGetProperty(name, out var child))
            {
                value = child;
            }
            else if (value.ValueKind == JsonValueKind.Array && segment.Index is { } index && index < value.GetArrayLength())
            {
                value = value[index];
            }
            else
            {
                value = default;
                return false;
            }
        }

        return true;
    }

    /// <summary>A property name, an array index, or a name made of digits (either, depending on what it meets).</summary>
    private sealed record Segment(string? Name, int? Index);
}
