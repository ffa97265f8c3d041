namespace Shepherd.Configuration;

using YamlDotNet.Core;
using YamlDotNet.Core.Events;

/// <summary>A YAML node as the binder sees it: a scalar, a list or a mapping, and where it starts in the file.</summary>
internal abstract class ConfigNode(Mark start)
{
    public Mark Start { get; } = start;
}

internal sealed class ConfigScalar(Mark start, string value, ScalarStyle style) : ConfigNode(start)
{
    public string Value { get; } = value;

    public ScalarStyle Style { get; } = style;

    /// <summary>An unquoted <c>~</c>, <c>null</c> or nothing at all: YAML's null.</summary>
    public bool IsNull => Style == ScalarStyle.Plain && Value is "" or "~" or "null" or "Null" or "NULL";
}

internal sealed class ConfigSequence(Mark start) : ConfigNode(start)
{
    public List<ConfigNode> Items { get; } = [];
}

/// <summary>A mapping that keeps every pair in file order, duplicated keys included, so the binder can name them.</summary>
internal sealed class ConfigMapping(Mark start) : ConfigNode(start)
{
    public List<KeyValuePair<ConfigNode, ConfigNode>> Pairs { get; } = [];
}

/// <summary>Reads YAML text into <see cref="ConfigNode"/>s straight from YamlDotNet's event parser.</summary>
/// <remarks>
/// YamlDotNet's own representation model throws at the first duplicated key, which would hide every other
/// problem in the file and give no key path. Building the tree from parser events keeps duplicates for the
/// binder to report with the rest. Anchors and aliases are resolved (an alias shares its anchor's node);
/// merge keys (<c>&lt;&lt;</c>) are not a YAML 1.2 feature and are reported as unknown keys.
/// </remarks>
internal static class ConfigYaml
{
    /// <summary>Parses <paramref name="yaml"/>.</summary>
    /// <returns>The first document's root (null for an empty file) and how many documents the text holds.</returns>
    /// <exception cref="YamlException">The text is not well-formed YAML.</exception>
    public static (ConfigNode? Root, int Documents) Parse(string yaml)
    {
        var reader = new Reader(new Parser(new StringReader(yaml)));
        try
        {
            return reader.ReadStream();
        }
        catch (InvalidOperationException ex)
        {
            // YamlDotNet's scanner throws this (not a YamlException) for some malformed input, e.g. "[ unclosed".
            throw new YamlException(reader.Last, reader.Last, "the text after this point is malformed (check brackets, quotes and indentation)", ex);
        }
    }

    private sealed class Reader(IParser parser)
    {
        private readonly Dictionary<string, ConfigNode> _anchors = new(StringComparer.Ordinal);

        /// <summary>The end of the last event read: where to point when the parser fails without saying where.</summary>
        public Mark Last { get; private set; } = Mark.Empty;

        public (ConfigNode? Root, int Documents) ReadStream()
        {
            ConfigNode? root = null;
            var documents = 0;
            parser.Consume<StreamStart>();
            while (Try<DocumentStart>(out _))
            {
                var node = Read();
                parser.Consume<DocumentEnd>();
                if (documents++ == 0)
                {
                    root = node;
                }
            }

            parser.Consume<StreamEnd>();
            return (root, documents);
        }

        private bool Try<T>(out T @event)
            where T : ParsingEvent
        {
            if (parser.TryConsume(out @event!))
            {
                Last = @event.End;
                return true;
            }

            return false;
        }

        private ConfigNode Read()
        {
            if (Try<Scalar>(out var scalar))
            {
                var node = new ConfigScalar(scalar.Start, scalar.Value, scalar.Style);
                Register(scalar.Anchor, node);
                return node;
            }

            if (Try<SequenceStart>(out var sequenceStart))
            {
                var node = new ConfigSequence(sequenceStart.Start);
                Register(sequenceStart.Anchor, node);
                while (!Try<SequenceEnd>(out _))
                {
                    node.Items.Add(Read());
                }

                return node;
            }

            if (Try<MappingStart>(out var mappingStart))
            {
                var node = new ConfigMapping(mappingStart.Start);
                Register(mappingStart.Anchor, node);
                while (!Try<MappingEnd>(out _))
                {
                    var key = Read();
                    var value = Read();
                    node.Pairs.Add(new(key, value));
                }

                return node;
            }

            if (Try<AnchorAlias>(out var alias))
            {
                return _anchors.TryGetValue(alias.Value.Value, out var target)
                    ? target
                    : throw new YamlException(alias.Start, alias.End, $"the alias '*{alias.Value.Value}' refers to no anchor defined before it");
            }

            var unexpected = parser.Current;
            throw new YamlException(unexpected?.Start ?? Last, unexpected?.End ?? Last, $"unexpected {unexpected?.GetType().Name ?? "end of input"}");
        }

        private void Register(AnchorName anchor, ConfigNode node)
        {
            if (!anchor.IsEmpty)
            {
                // A later anchor of the same name shadows the earlier one, as the YAML spec says.
                _anchors[anchor.Value] = node;
            }
        }
    }
}
