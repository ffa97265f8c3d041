namespace Shepherd.Testing;

using System.Text.Json;

/// <summary>Reads an SSE response body the way a client does, for assertions.</summary>
public static class Sse
{
    /// <summary>The <c>data:</c> payloads of every event, in order (<c>[DONE]</c> included).</summary>
    public static List<string> DataEvents(string body)
    {
        var events = new List<string>();
        foreach (var block in body.Replace("\r\n", "\n", StringComparison.Ordinal).Split("\n\n", StringSplitOptions.RemoveEmptyEntries))
        {
            var data = string.Join("\n", block.Split('\n').Where(l => l.StartsWith("data:", StringComparison.Ordinal)).Select(l => l[5..].TrimStart(' ')));
            if (data.Length > 0)
            {
                events.Add(data);
            }
        }

        return events;
    }

    /// <summary>The concatenated <c>delta.content</c> of an OpenAI stream.</summary>
    public static string Content(IEnumerable<string> events)
    {
        var text = new System.Text.StringBuilder();
        foreach (var data in events.Where(e => e != "[DONE]"))
        {
            using var doc = JsonDocument.Parse(data);
            if (doc.RootElement.TryGetProperty("choices", out var choices))
            {
                foreach (var choice in choices.EnumerateArray())
                {
                    if (choice.TryGetProperty("delta", out var delta) && delta.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String)
                    {
                        text.Append(content.GetString());
                    }
                }
            }
        }

        return text.ToString();
    }
}
