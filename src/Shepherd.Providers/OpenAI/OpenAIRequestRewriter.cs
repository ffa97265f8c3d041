namespace Shepherd.Providers.OpenAI;

using System.Runtime.CompilerServices;
using System.Text.Json;
using Shepherd.Chat;
using Shepherd.Providers.Shared;

/// <summary>
/// Builds the body for an OpenAI-compatible upstream from the client's own bytes: the model value is spliced,
/// stream usage is requested, <c>developer</c> roles are renamed for servers that reject them, and nothing else
/// changes, so fields Shepherd does not know still reach the upstream byte for byte.
/// </summary>
public static class OpenAIRequestRewriter
{
    private static readonly byte[] StreamOptionsMember = "\"stream_options\":{\"include_usage\":true},"u8.ToArray();
    private static readonly byte[] StreamOptionsObject = "{\"include_usage\":true}"u8.ToArray();
    private static readonly byte[] SystemRole = "\"system\""u8.ToArray();

    /// <param name="request">The validated client request.</param>
    /// <param name="modelJson">The upstream model as a JSON string token (quoted, escaped).</param>
    /// <param name="developerAsSystem">Rename <c>developer</c> messages to <c>system</c> for servers that reject the role.</param>
    /// <param name="output">Receives the body.</param>
    public static void Write(ChatRequest request, ReadOnlyMemory<byte> modelJson, bool developerAsSystem, PooledBuffer output)
    {
        var body = request.Body.Span;
        var edits = default(Edits);
        var count = 0;
        edits[count++] = new Edit(request.ModelRange.Start, request.ModelRange.Length, modelJson);

        // Always ask for stream usage: cost accounting needs it, and the chunk is dropped again if the client did not ask.
        if (request.Stream && !request.IncludeUsage)
        {
            if (request.StreamOptionsRange.IsPresent)
            {
                var replaced = WithIncludeUsage(request.StreamOptionsRange.Slice(request.Body).Span);
                edits[count++] = new Edit(request.StreamOptionsRange.Start, request.StreamOptionsRange.Length, replaced);
            }
            else
            {
                var open = body.IndexOf((byte)'{');
                edits[count++] = new Edit(open + 1, 0, StreamOptionsMember);
            }
        }

        Span<Edit> fixedEdits = edits;
        if (developerAsSystem && request.HasDeveloperRole)
        {
            // Rare: the role values are spliced too, so every other byte (unknown fields included) stays the client's.
            var all = new List<Edit>(fixedEdits[..count].ToArray());
            AddDeveloperRoleEdits(request, all);
            all.Sort(static (a, b) => a.Start.CompareTo(b.Start));
            Apply(body, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(all), output);
            return;
        }

        var used = fixedEdits[..count];
        if (count == 2 && used[1].Start < used[0].Start)
        {
            (used[0], used[1]) = (used[1], used[0]);
        }

        Apply(body, used, output);
    }

    private static void Apply(ReadOnlySpan<byte> body, ReadOnlySpan<Edit> edits, PooledBuffer output)
    {
        var position = 0;
        foreach (var edit in edits)
        {
            output.Write(body[position..edit.Start]);
            output.Write(edit.Replacement.Span);
            position = edit.Start + edit.Length;
        }

        output.Write(body[position..]);
    }

    /// <summary>Finds every <c>"role": "developer"</c> value of a message (the parser validated the array's shape).</summary>
    private static void AddDeveloperRoleEdits(ChatRequest request, List<Edit> edits)
    {
        var offset = request.MessagesRange.Start;
        var reader = new Utf8JsonReader(request.MessagesRange.Slice(request.Body).Span);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartArray)
        {
            return;
        }

        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                reader.Skip();
                continue;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isRole = reader.ValueTextEquals("role"u8);
                reader.Read();
                if (isRole && reader.TokenType == JsonTokenType.String && reader.ValueTextEquals("developer"u8))
                {
                    // The token with its quotes (and any escapes the client used).
                    var start = (int)reader.TokenStartIndex;
                    edits.Add(new Edit(offset + start, (int)reader.BytesConsumed - start, SystemRole));
                }
                else
                {
                    reader.Skip();
                }
            }
        }
    }

    private static byte[] WithIncludeUsage(ReadOnlySpan<byte> streamOptions)
    {
        // Rare: the client sent stream_options without include_usage (or null). Keep its other members as they were.
        var reader = new Utf8JsonReader(streamOptions);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            return StreamOptionsObject;
        }

        using var document = JsonDocument.Parse(streamOptions.ToArray());
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(streamOptions.Length + 24);
        using (var writer = new Utf8JsonWriter(buffer, JsonDefaults.Writer))
        {
            writer.WriteStartObject();
            foreach (var member in document.RootElement.EnumerateObject())
            {
                if (!member.NameEquals("include_usage"u8))
                {
                    member.WriteTo(writer);
                }
            }

            writer.WriteBoolean("include_usage"u8, true);
            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    private readonly record struct Edit(int Start, int Length, ReadOnlyMemory<byte> Replacement);

    [InlineArray(2)]
    private struct Edits
    {
        private Edit _element;
    }
}
