{#- An identity that must hold on every row (e.g. demand = ordered - cancelled - returned).
    Returns the rows where it does not. -#}
{% test expression_is_true(model, expression) %}

select *
from {{ model }}
where not coalesce(({{ expression }}), false)

{% endtest %}
